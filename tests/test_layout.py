"""The shape of src/srpo: data flows one way (data -> reflect -> train -> eval -> report), no import cycles, no module
over 400 lines without a reason on its first line."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
MODULES = {".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): p
           for p in sorted((SRC / "srpo").rglob("*.py"))}
# A module may import only from its own stage or an earlier one; the shared layer (0) imports no stage.
STAGES = {"srpo.reflect": 1, "srpo.train": 2, "srpo.eval": 3, "srpo.report": 4, "srpo.demo": 5, "srpo.cli": 6}


def stage(module: str) -> int:
    return max((rank for prefix, rank in STAGES.items() if module == prefix or module.startswith(prefix + ".")),
               default=0)


def srpo_imports(path: Path, module: str) -> list[tuple[str, bool]]:
    """(imported srpo module, at module level) for every import in the file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("srpo"):
            names = [f"{node.module}.{a.name}" for a in node.names]
            found += [(n if n in MODULES else node.module, id(node) in top) for n in names]
        elif isinstance(node, ast.Import):
            found += [(a.name, id(node) in top) for a in node.names if a.name.startswith("srpo")]
    return [(name, at_top) for name, at_top in found if name != module]


GRAPH = {module: srpo_imports(path, module) for module, path in MODULES.items()}


def test_no_module_imports_a_later_stage():
    wrong = [f"{m} (stage {stage(m)}) imports {i} (stage {stage(i)})"
             for m, imports in GRAPH.items() for i, _ in imports if stage(i) > stage(m)]
    assert not wrong, "\n".join(wrong)


def test_eval_and_reflect_are_independent():
    wrong = [f"{m} imports {i}" for m, imports in GRAPH.items() for i, _ in imports
             if stage(m) == 3 and stage(i) == 1]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_and_no_hidden_imports():
    hidden = [f"{m} imports {i} inside a function" for m, imports in GRAPH.items() if m != "srpo.cli"
              for i, at_top in imports if not at_top]
    assert not hidden, "\n".join(hidden)  # srpo.cli alone imports lazily, so `srpo --help` starts fast

    edges = {m: {i for i, _ in imports if i in GRAPH} for m, imports in GRAPH.items()}

    def visit(module, path):
        if module in path:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        for nxt in edges[module]:
            visit(nxt, path + [module])

    for module in edges:
        visit(module, [])


def test_long_modules_say_why():
    long = [f"{p.relative_to(SRC)} ({n} lines)" for p in MODULES.values()
            if (n := len(p.read_text().splitlines())) > 400 and not p.read_text().startswith("# Over 400 lines")]
    assert not long, "add a first line '# Over 400 lines: <why>' or split: " + ", ".join(long)

import os
from pathlib import Path

import pytest
import torch

from srpo.data import generate_problems, load_problems, problems_to_dataset, save_problems
from srpo.eval.benchmarks import DATA_ENV
from srpo.models import build_tiny_model

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one test process per core (pytest-xdist):
    os.environ["OMP_NUM_THREADS"] = "1"  # one thread each, in the subprocesses tests start too
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny_model(path)
    return path


@pytest.fixture(scope="session")
def problems_file(tmp_path_factory):
    """Synthetic problems of several families, sizes and answer types (numbers and option letters)."""
    path = tmp_path_factory.mktemp("problems") / "problems.jsonl"
    problems = generate_problems(12, seed=3, difficulty=1, image_size=84)
    problems += generate_problems(4, seed=4, difficulty=2, image_size=140)
    return save_problems(problems, path)


@pytest.fixture(scope="session")
def sft_dataset(tmp_path_factory, problems_file):
    """An SFT dataset folder as `srpo reflect` writes it: the problems with single-round targets."""
    from srpo.demo import pretrain_target

    problems = load_problems(problems_file)
    ds = problems_to_dataset(problems).add_column("target", [pretrain_target(p) for p in problems])
    path = tmp_path_factory.mktemp("sft") / "data"
    ds.save_to_disk(str(path / "dataset"))
    return path


@pytest.fixture(scope="session")
def shared_benchmarks() -> Path:
    """The official benchmark folders (mathvista/, mathvision/, ...): $SRPO_DATA_DIR, else ../shared/benchmarks beside
    the repository. The package itself has no default (srpo.eval.benchmarks.common.data_dir); tests that need a file
    there skip when it is absent."""
    return Path(os.environ.get(DATA_ENV) or Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks")


@pytest.fixture
def benchmarks_dir(shared_benchmarks, monkeypatch) -> Path:
    """`shared_benchmarks`, also set as $SRPO_DATA_DIR for the code under test (the default `--data` folder)."""
    monkeypatch.setenv(DATA_ENV, str(shared_benchmarks))
    return shared_benchmarks


@pytest.fixture(scope="session")
def real_processor_dir() -> Path:
    """The real Qwen2.5-VL-7B-Instruct tokenizer, chat template and image-processor files (no weights), in
    ../shared/qwen2_5_vl_processor beside the repository; tests that use it skip when it is absent."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "qwen2_5_vl_processor"
    if not (path / "vocab.json").exists():
        pytest.skip(f"{path} is absent: the real Qwen2.5-VL processor files are not on this machine")
    return path


@pytest.fixture(scope="session")
def real_tiny_model_dir(tmp_path_factory, real_processor_dir) -> Path:
    """A tiny random Qwen2.5-VL keeping the real processor (tokenizer, vocabulary size, template, pixel bounds)."""
    path = tmp_path_factory.mktemp("real_tiny") / "model"
    build_tiny_model(path, processor_dir=real_processor_dir)
    return path

#!/usr/bin/env bash
# Fill the ignored folder .whl/ with what benchmarks/gpu_check.sh needs on a GPU machine that has torch,
# transformers (too old), peft, accelerate, torchvision, pyarrow, pandas, xxhash, pyyaml, pillow, typer and
# aiohttp but no network: the wheels srpo needs beyond those (docs/scaling.md#gpu-figures), pinned to the versions
# installed in .venv, plus a copy of the real Qwen2.5-VL processor files (../shared does not travel with a checkout).
#
#   bash benchmarks/gpu_wheels.sh [PROCESSOR_DIR]      # run from the repository root, with network access
#
# Versions come from .venv (what the tests pass with); one wheel per package, or pip's install stops.
set -euo pipefail
cd "$(dirname "$0")/.."
processor_dir=${1:-../shared/qwen2_5_vl_processor}
[[ -f "$processor_dir/tokenizer_config.json" ]] || {
    echo "gpu_wheels.sh: $processor_dir has no tokenizer_config.json; pass the Qwen2.5-VL processor folder as the first argument" >&2
    exit 2
}
# transformers: the machine's is older than srpo's >=5.23. regex and fsspec: pinned because transformers checks
# regex's version at import and datasets caps fsspec. The rest are absent there.
packages=(transformers trl datasets dill multiprocess fsspec regex math-verify latex2sympy2_extended antlr4-python3-runtime)
pins=()
for name in "${packages[@]}"; do
    pin=$(.venv/bin/pip freeze 2>/dev/null | grep -i -E "^${name//[-_]/[-_]}==" || true)
    [[ -n "$pin" ]] || { echo "gpu_wheels.sh: $name is not installed in .venv; install srpo there first (pip install -e .)" >&2; exit 2; }
    pins+=("$pin")
done
mkdir -p .whl
for pin in "${pins[@]}"; do
    name=${pin%%==*}
    pattern=$(echo "$name" | tr '-' '_')
    # Keep one version: drop a wheel of another version left from an earlier run.
    for old in .whl/*.whl; do
        [[ -e "$old" ]] || continue
        base=$(basename "$old")
        if [[ "${base,,}" == "${pattern,,}-"* && "${base,,}" != "${pattern,,}-${pin#*==}-"* ]]; then rm -f "$old"; fi
    done
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "$pin"
done
rm -rf .whl/qwen2_5_vl_processor
cp -r "$processor_dir" .whl/qwen2_5_vl_processor
chmod -R u+w .whl/qwen2_5_vl_processor
ls .whl
du -sh .whl

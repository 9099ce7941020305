#!/usr/bin/env bash
# One command for a fresh single-GPU machine without network (docs/scaling.md#gpu-figures): install the wheels
# carried in .whl/ (benchmarks/gpu_wheels.sh fills it), check the imports, run benchmarks/gpu_grpo.py on the
# Qwen2.5-VL-3B shape within a budget that ends under 8 minutes, and print the table.
#
#   bash benchmarks/gpu_check.sh                  # from the repository root; results in ${OUT:-/tmp/srpo_gpu_bench}
#   bash benchmarks/gpu_check.sh --smoke          # CPU: the same script on the tiny model (tests run this)
#
# Environment: PYTHON (default python3), SRPO_SKIP_WHEELS=1 (use the installed packages, not .whl), PROCESSOR
# (default .whl/qwen2_5_vl_processor), BUDGET_S (rows that would end later are skipped, default 330),
# TIME_LIMIT_S (hard stop of the benchmark, default 400). Extra arguments go to gpu_grpo.py.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
python=${PYTHON:-python3}
out_dir=${OUT:-/tmp/srpo_gpu_bench}
processor=${PROCESSOR:-.whl/qwen2_5_vl_processor}
smoke=false
for arg in "$@"; do [[ "$arg" == --smoke ]] && smoke=true; done
mkdir -p "$out_dir"
start=$SECONDS

if [[ -z "${SRPO_SKIP_WHEELS:-}" ]] && compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || { echo "gpu_check.sh: installing .whl/*.whl into /tmp/site failed (see above)" >&2; exit 3; }
    export PYTHONPATH=/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}
    echo "installed $(ls .whl/*.whl | wc -l) wheels from .whl into /tmp/site ($((SECONDS - start)) s)"
else
    export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
fi

# Fail fast, one line, on a missing or broken package, before any model is built.
"$python" - <<'EOF' || exit 3
import importlib, sys
versions = []
for name in ("torch", "transformers", "trl", "datasets", "peft", "accelerate", "PIL", "yaml", "numpy", "srpo.models"):
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0]
        sys.exit(f"gpu_check.sh: cannot import {name}: {type(exc).__name__}: {first} "
                 "(carry its wheel: bash benchmarks/gpu_wheels.sh, then name .whl in carry)")
    versions.append(f"{name} {getattr(module, '__version__', '')}".strip())
import torch
device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
print("imports ok:", ", ".join(versions), "|", device)
EOF

args=(--out-dir "$out_dir")
if [[ -d "$processor" ]]; then
    args+=(--processor "$processor")
elif ! $smoke; then
    echo "gpu_check.sh: $processor is missing; run bash benchmarks/gpu_wheels.sh here (it copies the processor files)" >&2
    exit 3
fi
$smoke || args+=(--budget-s "${BUDGET_S:-330}")

# KILL, not TERM: the results file is rewritten atomically after every row, so a cut run keeps what it measured.
PYTHONUNBUFFERED=1 timeout --signal=KILL "${TIME_LIMIT_S:-400}" "$python" benchmarks/gpu_grpo.py "${args[@]}" "$@" \
    2>&1 | tee "$out_dir/gpu_grpo.log" | grep -E '^\[gpu_grpo\]|^\{"row"|Error|error:|^wrote '
rc=${PIPESTATUS[0]}
[[ $rc == 137 ]] && echo "gpu_check.sh: the benchmark hit TIME_LIMIT_S=${TIME_LIMIT_S:-400} and was stopped; finished rows are kept"

results=$(ls -t "$out_dir"/gpu_grpo_*.json 2>/dev/null | head -1)
if [[ -z "$results" ]]; then
    echo "gpu_check.sh: no results file in $out_dir (exit $rc); the log is $out_dir/gpu_grpo.log" >&2
    exit 4
fi
"$python" benchmarks/gpu_grpo.py --show "$results"
echo "results: $results ($((SECONDS - start)) s in all, benchmark exit $rc)"
exit "$rc"

#!/usr/bin/env bash
# The ONE command a session with a lent GPU runs through the device tool (issue 15), about 9 minutes in all:
#
#     run(command="bash bench/gpu_session.sh", carry=[".whl"], timeout_s=600)
#
# The machine (nvidia-h200: Python 3.12, PyTorch 2.11, nvidia-ml-py, onnx, onnxruntime, transformers; no Django,
# Celery or torchao; nothing can be downloaded there) gets Slimforge's missing packages as wheels carried in .whl/
# (ignored by git). Made on a machine with pip, from the repository's root (bench/gpu_check.py's header says more):
#
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#         -d .whl torch-pruning==1.6.1 torchao==0.18.0
#
# torch-pruning is needed by every optimizers test and by bench/gpu_check.py (optimizers/recipes/prune/structured.py
# imports it); without torchao the int8 / int4 / fp8 rows say "skipped: ...". Add transformers, tokenizers,
# safetensors and huggingface-hub only if the image lacks them (its package list had them on 2026-11-17).
#
# What runs:
# 1. pytest -m gpu on every file that has gpu-marked tests and needs no Django: tests/optimizers/** (their conftest
#    is Django-free) and tests/tasks/test_telemetry.py (psutil and NVML only). tests/conftest.py imports Django and
#    DRF, so it is kept out with --confcutdir=tests/optimizers; no gpu-marked test elsewhere needs Django or a
#    database (grep -rln "mark.gpu" tests). test_bench_gpu_check.py is left out: step 2 is its full-size run.
# 2. bench/gpu_check.py at full size, its JSON in $OUT/gpu_check.json, then its table.
# Results come back in $OUT: pytest_gpu.log, gpu_check.log, gpu_check.json.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-session}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}

if compgen -G ".whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || { echo "gpu_session: installing the carried wheels failed"; exit 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
else
    echo "gpu_session: no wheels in .whl/: torch-pruning and torchao must already be installed"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,power.draw,temperature.gpu --format=csv || true
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" || true

echo "== 1. pytest -m gpu (no Django) =="
mapfile -t GPU_TESTS < <(grep -rl "mark.gpu" tests/optimizers tests/tasks/test_telemetry.py | grep -v test_bench_gpu_check)
printf '   %s\n' "${GPU_TESTS[@]}"
timeout 200 "$PYTHON" -m pytest -p no:cacheprovider -p no:django --confcutdir=tests/optimizers -m gpu -q -rs \
    "${GPU_TESTS[@]}" 2>&1 | tee "$OUT/pytest_gpu.log"
TESTS=${PIPESTATUS[0]}

echo "== 2. bench/gpu_check.py =="
# GPU_CHECK_ARGS: a dry run of this script on a machine without a GPU passes "--device cpu --quick".
# shellcheck disable=SC2086
timeout 330 "$PYTHON" bench/gpu_check.py --budget-s 250 --out "$OUT/gpu_check.json" ${GPU_CHECK_ARGS:-} 2>&1 \
    | tee "$OUT/gpu_check.log"
CHECK=${PIPESTATUS[0]}

echo "== summary =="
echo "pytest -m gpu: exit $TESTS ($(tail -n 1 "$OUT/pytest_gpu.log"))"
echo "gpu_check: exit $CHECK (124: killed at its time limit; the JSON keeps the rows finished before)"
if [ -f "$OUT/gpu_check.json" ]; then
    "$PYTHON" bench/gpu_check.py --table "$OUT/gpu_check.json"
fi
exit $(( TESTS != 0 || CHECK != 0 ))

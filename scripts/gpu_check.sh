#!/usr/bin/env bash
# One prepared check for a CUDA machine: no network needed (it uses what is installed in .venv).
#   bash scripts/gpu_check.sh            # the gpu tests, then the benchmark on CUDA; a short table last
# Without a CUDA device it runs the CPU-safe parts (the gpu tests skip; a quick CPU benchmark).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mkdir -p outputs/bench
"$PY" - <<'PYEOF'
import torch
print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}",
      f"({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "")
PYEOF
"$PY" -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu.py
if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    "$PY" scripts/bench.py --device cuda --mini-B 32 --repeats 20 --out outputs/bench/bench-cuda.json | tee outputs/bench/bench-cuda.txt
    "$PY" scripts/bench.py --device cuda --mini-B 32 --repeats 20 --bf16 --out outputs/bench/bench-cuda-bf16.json | tail -n 12
else
    echo "no CUDA device: running the CPU-safe parts only"
    "$PY" scripts/bench.py --quick --device cpu --out outputs/bench/bench-cpu-quick.json | tail -n 12
fi

#!/usr/bin/env bash
# The prepared device check (scripts/gpu_check.py says what it measures and how it is time-boxed).
#   bash scripts/gpu_check.sh OUT             # on a CUDA machine, at most about 8 minutes
#   bash scripts/gpu_check.sh --dry-run OUT   # the CPU rehearsal, every size shrunk (about 2 minutes)
# Python: $PYTHON, else .venv/bin/python, else python3 (a bare CUDA machine's, which has torch).
# Packages that machine lacks (hydra-core, omegaconf, antlr4, kanjivg) travel as wheels in .whl/
# (`make gpu-wheels` fetches them here); they are installed into a private folder, never over
# what the machine has.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
# What the code reads: Hydra and OmegaConf as modules, kanjivg as data (its wheel ships a kanji/
# folder of SVGs and no module, so `import kanjivg` fails even where it is installed).
PROBE='import hydra, omegaconf, importlib.metadata as m, pathlib; assert pathlib.Path(str(m.distribution("kanjivg").locate_file("kanji"))).is_dir()'
if ! "$PY" -c "$PROBE" 2>/dev/null; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "gpu_check: hydra-core, omegaconf or kanjivg is missing and .whl/ holds no wheels: run 'make gpu-wheels' first" >&2
        exit 2
    fi
    SITE=$(mktemp -d /tmp/anil_site.XXXX)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .whl/*.whl
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the package from this tree, installed or not
exec "$PY" scripts/gpu_check.py "$@"

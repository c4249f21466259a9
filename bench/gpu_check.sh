#!/usr/bin/env bash
# The first GPU session's one call (docs/benchmarks.md, "GPU"): environment, bf16 + compile step times of
# GAP/PCKE/PCLE at the paper batch, one steady NW-UCLA epoch of the paper protocol, the full-table estimate;
# one JSON (bench/results/gpu_check.json, or --out). Under 5 minutes on an H100/H200; a hard stop at 290 s.
#   bench/gpu_check.sh [--data-root DIR] [--out FILE]      on the GPU machine
#   bench/gpu_check.sh --cpu [--no-compile]                smoke test here (tiny sizes; tests/test_speed.py)
# Python: $PYTHON, else the project's .venv, else python3 (a GPU image's own torch). Wheels of packages the
# image lacks (jsonschema and its needs: `make gpu-wheels`) are installed from .whl/ where it lacks them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if ! "$PY" -c "import jsonschema" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then  # only where missing
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu-check-site .whl/*.whl
  export PYTHONPATH="/tmp/gpu-check-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
  TOKENIZERS_PARALLELISM=false
case " $* " in
  *" --cpu "*) exec "$PY" -m bench.gpu_check "$@" ;;  # a smoke test on a shared CPU: no hard stop
  *) exec timeout 290 "$PY" -m bench.gpu_check "$@" ;;
esac

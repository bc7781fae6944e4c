#!/usr/bin/env bash
# GPU readiness check (bench/gpu_check.py) under a 9.5-minute limit, so one lent machine's 10-minute command
# slot always returns its output. Extra arguments go to the script, e.g. `bench/gpu_check.sh --n 16384`.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
python -c "import fpprov" 2>/dev/null || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=index,name,memory.used,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: none"
timeout --signal=INT --kill-after=15 570 python bench/gpu_check.py "$@"
status=$?
[ "$status" -eq 124 ] && echo "gpu check: stopped at the 570 s limit (pass a smaller --n)"
exit "$status"

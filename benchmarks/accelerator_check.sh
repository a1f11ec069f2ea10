#!/usr/bin/env bash
# Every accelerator check of the project in one run; see benchmarks/accelerator_check.py.
#   benchmarks/accelerator_check.sh [--cpu-smoke] [--output FILE] [--peak-bf16 T --peak-f32 T]
# On a GPU host, jax needs its CUDA plugin (pip install "jax[cuda13]"); PYTHON picks the
# interpreter (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " != *" --cpu-smoke "* ]]; then
  # Overlap collectives with compute, as launch/single_host.py does.
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_enable_latency_hiding_scheduler=true"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 480 "${PYTHON:-python3}" benchmarks/accelerator_check.py "$@"

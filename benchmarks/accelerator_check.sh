#!/usr/bin/env bash
# Every accelerator figure in one staged run; see benchmarks/accelerator_check.py.
#   benchmarks/accelerator_check.sh [--cpu_smoke] [--output FILE] [--only STAGE,...]
# On a GPU host, jax needs its CUDA plugin (pip install "jax[cuda13]"); PYTHON picks the
# interpreter (default: python3). Needs no TensorFlow, clu or grain.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " != *" --cpu_smoke "* ]]; then
  # Overlap collectives with compute, as launch/single_host.py does.
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_enable_latency_hiding_scheduler=true"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# The stages share compiled programs and autotuning results through this cache.
export IDM_JAX_COMPILATION_CACHE="${IDM_JAX_COMPILATION_CACHE:-$PWD/.cache/xla}"
exec "${PYTHON:-python3}" benchmarks/accelerator_check.py "$@"

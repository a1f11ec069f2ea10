#!/usr/bin/env python3
r"""Runs idm_jax training on one host with all its GPUs in one process.

  python launch/single_host.py --config=configs/X.py --workdir=DIR \
      [--gpus=0,1,2,3] [--dry_run] [-- --config.FIELD=VALUE ...]

One process drives every visible GPU (all of them, or `--gpus`, which sets
CUDA_VISIBLE_DEVICES; otherwise the caller's CUDA_VISIBLE_DEVICES is kept).
Adds `--xla_gpu_enable_latency_hiding_scheduler=true` to XLA_FLAGS, which
JAX's GPU performance tips recommend: it overlaps the gradient all-reduce with
compute (`--no_xla_flags` to leave XLA_FLAGS alone). `--dry_run` prints the
command instead of running it.
"""

import argparse
import os
import sys

import launch_common

_XLA_GPU_FLAGS = ("--xla_gpu_enable_latency_hiding_scheduler=true",)


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", required=True)
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--gpus", help="GPU ids to use, e.g. 0,1,2,3")
  parser.add_argument("--no_xla_flags", action="store_true",
                      help="do not add the GPU performance flags")
  parser.add_argument("--python", default=sys.executable)
  parser.add_argument("--dry_run", action="store_true",
                      help="print the command and exit")
  parser.add_argument("overrides", nargs="*",
                      help="after --: flags for idm_jax.main")
  return parser


def build_command(args: argparse.Namespace) -> list[str]:
  """`env VAR=VALUE ... python -m idm_jax.main ...`."""
  env = []
  if args.gpus is not None:
    env.append(f"CUDA_VISIBLE_DEVICES={args.gpus}")
  if not args.no_xla_flags:
    flags = os.environ.get("XLA_FLAGS", "").split()
    flags += [f for f in _XLA_GPU_FLAGS if f not in flags]
    env.append(f"XLA_FLAGS={' '.join(flags)}")
  command = [args.python, "-m", "idm_jax.main", f"--config={args.config}",
             f"--workdir={args.workdir}", *args.overrides]
  return ["env", *env, *command] if env else command


def main(argv: list[str] | None = None) -> None:
  args = _parser().parse_args(argv)
  command = build_command(args)
  launch_common.execute(command, args.dry_run, "check --python")


if __name__ == "__main__":
  main()

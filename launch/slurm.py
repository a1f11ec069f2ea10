#!/usr/bin/env python3
r"""Submits idm_jax training as a multi-node SLURM GPU job.

  python launch/slurm.py --nodes=2 --gpus_per_node=8 --config=configs/X.py \
      --workdir=/shared/DIR [--partition=P] [--time=1-00:00:00] [--dry_run] \
      [-- --config.FIELD=VALUE ...]

Submits `launch/slurm_job.sbatch` with one task per GPU (`--ntasks-per-node`
= GPUs per node, `--gpus-per-task=1`), run from the repository root with this
python; the job script `srun`s `python -m idm_jax.main` once per task, and
`jax.distributed.initialize()` reads SLURM's environment. `--dry_run` prints
the sbatch command instead of running it.
"""

import argparse
import pathlib
import sys

import launch_common

_HERE = pathlib.Path(__file__).resolve().parent
_JOB_SCRIPT = _HERE / "slurm_job.sbatch"


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--nodes", type=int, default=1)
  parser.add_argument("--gpus_per_node", type=int, default=8)
  parser.add_argument("--cpus_per_task", type=int,
                      help="CPU cores per process (input pipeline workers)")
  parser.add_argument("--partition")
  parser.add_argument("--account")
  parser.add_argument("--time", help="time limit, e.g. 1-00:00:00")
  parser.add_argument("--job_name", default="idm_jax")
  parser.add_argument("--sbatch_arg", action="append", default=[],
                      help="extra sbatch option, repeatable")
  parser.add_argument("--python", default=sys.executable,
                      help="python on the compute nodes (default: this one)")
  parser.add_argument("--config", required=True,
                      help="config file, relative to the repository root")
  parser.add_argument("--workdir", required=True,
                      help="a directory all nodes share")
  parser.add_argument("--dry_run", action="store_true",
                      help="print the command and exit")
  parser.add_argument("overrides", nargs="*",
                      help="after --: flags for idm_jax.main")
  return parser


def build_command(args: argparse.Namespace) -> list[str]:
  """The sbatch command line."""
  command = [
      "sbatch", f"--job-name={args.job_name}", f"--nodes={args.nodes}",
      f"--ntasks-per-node={args.gpus_per_node}", "--gpus-per-task=1",
      f"--chdir={_HERE.parent}", f"--export=ALL,IDM_PYTHON={args.python}"]
  for option in ("cpus_per_task", "partition", "account", "time"):
    value = getattr(args, option)
    if value is not None:
      command.append(f"--{option.replace('_', '-')}={value}")
  return command + args.sbatch_arg + [
      str(_JOB_SCRIPT), f"--config={args.config}", f"--workdir={args.workdir}",
      *args.overrides]


def main(argv: list[str] | None = None) -> None:
  args = _parser().parse_args(argv)
  if args.nodes < 1 or args.gpus_per_node < 1:
    sys.exit("--nodes and --gpus_per_node must be at least 1")
  command = build_command(args)
  launch_common.execute(command, args.dry_run, "run this on a SLURM login node")


if __name__ == "__main__":
  main()

#!/usr/bin/env python3
r"""Starts idm_jax training on every worker of a Cloud TPU pod slice.

  python launch/tpu_pod.py --tpu=NAME --zone=ZONE --config=configs/X.py \
      --workdir=gs://BUCKET/DIR [--dry_run] [-- --config.FIELD=VALUE ...]

Runs one `gcloud compute tpus tpu-vm ssh NAME --worker=all` whose command, on
each worker: optionally fetches the code (`--git_url`), installs the pinned
requirements with JAX's TPU extra, then runs `python3 -m idm_jax.main`. The
workers find each other through `jax.distributed.initialize()`, which needs no
arguments on Cloud TPU. The workdir must be shared by all workers (a GCS path).
`--dry_run` prints the command instead of running it.
"""

import argparse
import pathlib
import re
import shlex
import sys

import launch_common

_REQUIREMENTS = pathlib.Path(__file__).resolve().parents[1] / "requirements.txt"


def _jax_version() -> str:
  """The jax version pinned in requirements.txt."""
  match = re.search(r"^jax==(\S+)", _REQUIREMENTS.read_text(), re.MULTILINE)
  if match is None:
    sys.exit(f"no 'jax==VERSION' pin in {_REQUIREMENTS}")
  return match.group(1)


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--tpu", required=True, help="TPU VM name")
  parser.add_argument("--zone", required=True)
  parser.add_argument("--project", help="GCP project (default: gcloud's)")
  parser.add_argument("--config", required=True,
                      help="config file, relative to the code directory")
  parser.add_argument("--workdir", required=True, help="gs://... path")
  parser.add_argument("--code_dir", default="idm_jax",
                      help="repository on each worker, relative to its home")
  parser.add_argument("--git_url",
                      help="clone (or update) the code from here first")
  parser.add_argument("--git_ref", default="main",
                      help="branch, tag or commit for --git_url")
  parser.add_argument("--python", default="python3",
                      help="python on the workers")
  parser.add_argument("--skip_install", action="store_true",
                      help="do not pip install the requirements")
  parser.add_argument("--dry_run", action="store_true",
                      help="print the command and exit")
  parser.add_argument("overrides", nargs="*",
                      help="after --: flags for idm_jax.main")
  return parser


def worker_command(args: argparse.Namespace) -> str:
  """The shell command every worker runs."""
  code_dir = shlex.quote(args.code_dir)
  steps = []
  if args.git_url:
    steps.append(f"(test -d {code_dir} || git clone -q "
                 f"{shlex.quote(args.git_url)} {code_dir})")
  steps.append(f"cd {code_dir}")
  if args.git_url:
    steps += [f"git fetch -q origin {shlex.quote(args.git_ref)}",
              "git checkout -q FETCH_HEAD"]
  if not args.skip_install:
    steps.append(shlex.join([
        args.python, "-m", "pip", "install", "-q", "-r", "requirements.txt",
        "-e", ".", f"jax[tpu]=={_jax_version()}"]))
  steps.append(shlex.join([
      args.python, "-m", "idm_jax.main", f"--config={args.config}",
      f"--workdir={args.workdir}", *args.overrides]))
  return " && ".join(steps)


def build_command(args: argparse.Namespace) -> list[str]:
  """The local gcloud command line."""
  command = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", args.tpu,
             f"--zone={args.zone}"]
  if args.project:
    command.append(f"--project={args.project}")
  return command + ["--worker=all", f"--command={worker_command(args)}"]


def main(argv: list[str] | None = None) -> None:
  parser = _parser()
  args = parser.parse_args(argv)
  if not args.workdir.startswith("gs://"):
    parser.error(f"--workdir={args.workdir}: every worker must write the same checkpoints, "
                 "so the workdir must be a bucket all of them reach: pass "
                 "--workdir=gs://BUCKET/DIR.")
  command = build_command(args)
  launch_common.execute(command, args.dry_run, "install the Google Cloud CLI")


if __name__ == "__main__":
  main()

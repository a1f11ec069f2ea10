"""What every launcher does with its command: print it (`--dry_run`) or replace itself with it."""
import os
import shlex
import sys


def execute(command: list[str], dry_run: bool, missing_hint: str) -> None:
  """Prints the shell-quoted command, or echoes it to stderr and execs it."""
  if dry_run:
    print(shlex.join(command))
    return
  print("+", shlex.join(command), file=sys.stderr, flush=True)
  try:
    os.execvp(command[0], command)
  except FileNotFoundError:
    sys.exit(f"{command[0]} not found: {missing_hint}")

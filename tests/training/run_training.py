"""Trains the micro experiment in a subprocess that the preemption tests signal or kill.

  python tests/training/run_training.py WORKDIR CONFIG_JSON [BLOCK_AT] [DELAY]

CONFIG_JSON: field overrides, e.g. '{"train.num_steps": 8}'. BLOCK_AT: the batch of this step
never arrives. DELAY: seconds before each batch. WORKDIR/started appears with the first batch.
"""
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from idm_jax.data import pipeline  # pylint: disable=g-import-not-at-top
from idm_jax.training import train
from tests.training import common


def main(argv: list[str]) -> None:
  workdir = pathlib.Path(argv[1])
  config = common.micro_config()
  for path, value in json.loads(argv[2]).items():
    section, field = path.split('.')
    config[section][field] = value
  block_at = int(argv[3]) if len(argv) > 3 and argv[3] != '-' else None
  delay = float(argv[4]) if len(argv) > 4 else 0.0
  workdir.mkdir(parents=True, exist_ok=True)
  pipeline.TrainPipeline = common.controlled_pipeline(
      block_at=block_at, delay=delay, started_marker=workdir / 'started')
  train.train_and_evaluate(config, workdir)


if __name__ == '__main__':
  main(sys.argv)

"""Checkpoints that survive preemption: kill -9 and resume, SIGTERM, and a NaN step."""
import hashlib
import json
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from idm_jax.data import pipeline
from idm_jax.training import train
from tests.training import common

RUNNER = pathlib.Path(__file__).with_name('run_training.py')


def _start(workdir: pathlib.Path, env: dict[str, str], overrides: dict, block_at=None,
           delay=0.0) -> subprocess.Popen:
  args = [sys.executable, str(RUNNER), str(workdir), json.dumps(overrides),
          '-' if block_at is None else str(block_at), str(delay)]
  return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)


def _wait_for(path: pathlib.Path, process: subprocess.Popen, timeout: float = 240) -> None:
  deadline = time.time() + timeout
  while not path.exists():
    if process.poll() is not None:
      raise AssertionError(f'training exited early:\n{process.stdout.read()[-5000:]}')
    if time.time() > deadline:
      process.kill()
      raise AssertionError(f'{path} did not appear in {timeout} s')
    time.sleep(0.1)


def _steps(workdir: pathlib.Path) -> list[int]:
  return sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())


def _assert_states_equal(a, b) -> None:
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b)
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_kill_and_resume_reproduces_the_uninterrupted_run(tmp_path, subprocess_env):
  config = common.micro_config()  # 8 steps, a checkpoint every 4, dropout on.
  uninterrupted = train.train_and_evaluate(config, tmp_path / 'one_run')

  workdir = tmp_path / 'killed'
  process = _start(workdir, subprocess_env, {}, block_at=4)
  _wait_for(workdir / 'checkpoints' / '4', process)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert _steps(workdir) == [4]

  resumed = train.train_and_evaluate(config, workdir)
  assert int(resumed.step) == int(uninterrupted.step) == 8
  _assert_states_equal(resumed, uninterrupted)


def test_sigterm_saves_and_exits_cleanly(tmp_path, subprocess_env):
  workdir = tmp_path / 'run'
  process = _start(workdir, subprocess_env,
                   {'train.num_steps': 1000, 'checkpoint.every_steps': 1000}, delay=0.2)
  _wait_for(workdir / 'started', process)
  time.sleep(2.0)
  process.send_signal(signal.SIGTERM)
  output, _ = process.communicate(timeout=120)
  assert process.returncode == 0, output[-5000:]
  assert 'SIGTERM received' in output
  steps = _steps(workdir)
  assert len(steps) == 1 and 0 < steps[0] < 1000, (steps, output[-3000:])
  assert f'Stopped by SIGTERM after step {steps[0]}' in output


def _digest(directory: pathlib.Path) -> dict[str, str]:
  return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(directory.rglob('*')) if p.is_file()}


def test_nan_stops_without_touching_the_last_checkpoint(tmp_path, monkeypatch):
  config = common.micro_config()
  config.train.num_steps = 4
  train.train_and_evaluate(config, tmp_path)
  before = _digest(tmp_path / 'checkpoints')

  config.train.num_steps = 8
  monkeypatch.setattr(pipeline, 'TrainPipeline', common.controlled_pipeline(nan_steps=(5,)))
  with pytest.raises(train.NonFiniteError, match=r'at step 5.*last good checkpoint is step 4'):
    train.train_and_evaluate(config, tmp_path)
  assert _steps(tmp_path) == [4]
  assert _digest(tmp_path / 'checkpoints') == before

  config.train.nonfinite = 'skip'
  state = train.train_and_evaluate(config, tmp_path)
  assert int(state.step) == 8 and _steps(tmp_path) == [4, 8]
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.params))

"""`python -m idm_jax.main`: start-up errors and cluster detection."""
import pathlib
import subprocess
import sys

import pytest

from idm_jax import distributed

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize('override, field', [('--config.nonexistent=1', 'nonexistent'),
                                             ('--config.train.batch_size=abc', 'batch_size')])
def test_command_line_errors_stop_before_anything_starts(tmp_path, override, field):
  workdir = tmp_path / 'run'
  result = subprocess.run(
      [sys.executable, '-m', 'idm_jax.main', '--config=configs/demo.py',
       f'--workdir={workdir}', override], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode != 0
  assert field in result.stderr, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr, result.stderr[-2000:]
  assert not workdir.exists()


_SLURM_TASK = {'SLURM_JOB_ID': '7', 'SLURM_STEP_NODELIST': 'node[1-2]', 'SLURM_PROCID': '3',
               'SLURM_LOCALID': '1', 'SLURM_STEP_NUM_TASKS': '16'}


@pytest.mark.parametrize('env, expected', [
    ({}, None),
    (_SLURM_TASK, 'SLURM'),
    ({**_SLURM_TASK, 'SLURM_STEP_NUM_TASKS': '1'}, None),  # One task: nothing to join.
    ({'SLURM_JOB_ID': '7', 'SLURM_NTASKS': '16'}, None),  # The batch script, not an srun task.
    ({'JAX_COORDINATOR_ADDRESS': '10.0.0.1:1234'}, 'JAX_COORDINATOR_ADDRESS'),
    ({'OMPI_COMM_WORLD_SIZE': '4'}, 'Open MPI'),
    ({'TPU_WORKER_HOSTNAMES': 'a,b'}, 'Cloud TPU'),
])
def test_cluster_environment(monkeypatch, env, expected):
  for key in ('JAX_COORDINATOR_ADDRESS', 'OMPI_COMM_WORLD_SIZE', 'TPU_WORKER_HOSTNAMES',
              'TPU_PROCESS_ADDRESSES', 'MEGASCALE_COORDINATOR_ADDRESS', 'SLURM_NTASKS',
              *_SLURM_TASK):
    monkeypatch.delenv(key, raising=False)
  for key, value in env.items():
    monkeypatch.setenv(key, value)
  assert distributed.cluster_environment() == expected


@pytest.mark.parametrize('flag_values,env,expected', [
    ((None, None, None), {}, {}),
    (('10.0.0.1:1234', 4, 3), {},
     dict(coordinator_address='10.0.0.1:1234', num_processes=4, process_id=3)),
    ((None, None, None), {'JAX_COORDINATOR_ADDRESS': 'h:1', 'JAX_NUM_PROCESSES': '2',
                          'JAX_PROCESS_ID': '0'},
     dict(coordinator_address='h:1', num_processes=2, process_id=0)),
    ((None, 2, 1), {'JAX_COORDINATOR_ADDRESS': 'h:9'},
     dict(coordinator_address='h:9', num_processes=2, process_id=1)),
    ((None, None, None), {'JAX_COORDINATOR_ADDRESS': 'h:9', 'OMPI_COMM_WORLD_SIZE': '2'},
     {}),  # Open MPI gives jax the count and id.
    ((None, None, None), {'JAX_COORDINATOR_ADDRESS': 'h:9'}, 'needs all of'),  # Nothing does.
    (('h:1', 2, None), {}, 'needs all of'),
    (('h:1', 2, 2), {}, 'must be in'),
])
def test_distributed_arguments_from_flags_and_environment(flag_values, env, expected):
  if isinstance(expected, str):
    with pytest.raises(ValueError, match=expected):
      distributed.distributed_arguments(*flag_values, env=env)
  else:
    assert distributed.distributed_arguments(*flag_values, env=env) == expected

"""The launchers' dry runs and real runs, against stub gcloud/sbatch/srun."""

import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch"
OVERRIDES = ["--config.batch_size=64", "--config.name=two words"]


def _launch(script, *args, env=None):
  """Runs launch/SCRIPT with ARGS; returns its stdout."""
  result = subprocess.run(
      [sys.executable, str(LAUNCH / script), *args], capture_output=True,
      text=True, env=env, check=True)
  return result.stdout


def _dry_run(script, *args, env=None):
  """The printed command, split as a shell would."""
  return shlex.split(_launch(script, *args, "--dry_run", "--", *OVERRIDES,
                             env=env))


def _stub_dir(tmp_path, *names):
  """Executables NAMES that record their argv and environment as JSON."""
  stubs = tmp_path / "bin"
  stubs.mkdir()
  for name in names:
    stub = stubs / name
    stub.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "with open(os.environ['STUB_OUT'], 'w') as f:\n"
        "  json.dump({'argv': sys.argv[1:], 'env': dict(os.environ)}, f)\n")
    stub.chmod(0o755)
  return stubs


def _stub_env(tmp_path, stubs):
  return dict(os.environ, PATH=f"{stubs}{os.pathsep}{os.environ['PATH']}",
              STUB_OUT=str(tmp_path / "call.json"))


def _stub_call(tmp_path):
  return json.loads((tmp_path / "call.json").read_text())


def _pinned_jax():
  return re.search(r"^jax==(\S+)", (REPO / "requirements.txt").read_text(),
                   re.MULTILINE).group(1)


TPU_ARGS = ("--tpu=idm-pod", "--zone=us-central2-b",
            "--config=configs/ffhq_16_128.py", "--workdir=gs://bucket/run 1")


def test_tpu_pod_runs_one_command_on_every_worker():
  argv = _dry_run("tpu_pod.py", *TPU_ARGS, "--project=proj",
                  "--git_url=https://example.com/idm_jax.git", "--git_ref=v1")
  assert argv[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "idm-pod"]
  assert "--zone=us-central2-b" in argv and "--project=proj" in argv
  assert argv.count("--worker=all") == 1
  (remote,) = [a.removeprefix("--command=") for a in argv
                if a.startswith("--command=")]
  steps = [shlex.split(step) for step in remote.split(" && ")]
  assert steps[1:4] == [["cd", "idm_jax"],
                        ["git", "fetch", "-q", "origin", "v1"],
                        ["git", "checkout", "-q", "FETCH_HEAD"]]
  assert "https://example.com/idm_jax.git" in steps[0]
  assert steps[4] == ["python3", "-m", "pip", "install", "-q", "-r",
                      "requirements.txt", "-e", ".",
                      f"jax[tpu]=={_pinned_jax()}"]
  assert steps[5] == ["python3", "-m", "idm_jax.main",
                      "--config=configs/ffhq_16_128.py",
                      "--workdir=gs://bucket/run 1", *OVERRIDES]


def test_tpu_pod_minimal_command():
  argv = _dry_run("tpu_pod.py", *TPU_ARGS, "--skip_install",
                  "--code_dir=src/idm jax")
  assert not any(a.startswith("--project") for a in argv)
  remote = argv[-1].removeprefix("--command=")
  assert shlex.split(remote) == [
      "cd", "src/idm jax", "&&", "python3", "-m", "idm_jax.main",
      "--config=configs/ffhq_16_128.py", "--workdir=gs://bucket/run 1",
      *OVERRIDES]


def test_slurm_one_task_per_gpu():
  argv = _dry_run("slurm.py", "--nodes=4", "--gpus_per_node=4",
                  "--partition=gpu", "--time=2:00:00", "--cpus_per_task=12",
                  "--sbatch_arg=--qos=high", "--python=/opt/venv/bin/python",
                  "--config=configs/df2k_x4.py", "--workdir=/shared/runs/x4")
  assert argv[0] == "sbatch"
  script = argv.index(str(LAUNCH / "slurm_job.sbatch"))
  options = argv[1:script]
  for option in ("--nodes=4", "--ntasks-per-node=4", "--gpus-per-task=1",
                 "--partition=gpu", "--time=2:00:00", "--cpus-per-task=12",
                 "--qos=high", f"--chdir={REPO}",
                 "--export=ALL,IDM_PYTHON=/opt/venv/bin/python"):
    assert option in options
  assert argv[script + 1:] == ["--config=configs/df2k_x4.py",
                               "--workdir=/shared/runs/x4", *OVERRIDES]


def test_tpu_pod_refuses_a_local_workdir():
  result = subprocess.run(
      [sys.executable, str(LAUNCH / "tpu_pod.py"), "--tpu=t", "--zone=z",
       "--config=c.py", "--workdir=runs/x", "--dry_run"], capture_output=True, text=True)
  assert result.returncode == 2 and "--workdir=gs://BUCKET/DIR" in result.stderr
  assert "gcloud" not in result.stdout


def test_slurm_rejects_zero_gpus():
  with pytest.raises(subprocess.CalledProcessError):
    _launch("slurm.py", "--gpus_per_node=0", "--config=c.py", "--workdir=w")


def test_slurm_job_script_sruns_main(tmp_path):
  stubs = _stub_dir(tmp_path, "srun")
  env = _stub_env(tmp_path, stubs)
  env.update(IDM_PYTHON="/opt/venv/bin/python", SLURM_CPUS_PER_TASK="12")
  subprocess.run(["bash", str(LAUNCH / "slurm_job.sbatch"),
                  "--config=configs/x.py", *OVERRIDES], env=env, check=True)
  call = _stub_call(tmp_path)
  assert call["argv"] == ["--kill-on-bad-exit=1", "/opt/venv/bin/python", "-m",
                          "idm_jax.main", "--config=configs/x.py", *OVERRIDES]
  assert call["env"]["JAX_LOCAL_DEVICE_IDS"] == "0"
  assert call["env"]["SRUN_CPUS_PER_TASK"] == "12"
  directives = re.findall(r"^#SBATCH (\S+)$",
                          (LAUNCH / "slurm_job.sbatch").read_text(),
                          re.MULTILINE)
  assert "--gpus-per-task=1" in directives


def test_single_host_flags_and_devices():
  env = dict(os.environ, XLA_FLAGS="--xla_dump_to=/tmp/dump")
  argv = _dry_run("single_host.py", "--config=configs/demo.py",
                  "--workdir=/tmp/run", "--gpus=0,1", "--python=python",
                  env=env)
  assert argv == [
      "env", "CUDA_VISIBLE_DEVICES=0,1",
      "XLA_FLAGS=--xla_dump_to=/tmp/dump "
      "--xla_gpu_enable_latency_hiding_scheduler=true",
      "python", "-m", "idm_jax.main", "--config=configs/demo.py",
      "--workdir=/tmp/run", *OVERRIDES]
  argv = _dry_run("single_host.py", "--config=configs/demo.py",
                  "--workdir=/tmp/run", "--no_xla_flags", "--python=python")
  assert argv == ["python", "-m", "idm_jax.main", "--config=configs/demo.py",
                  "--workdir=/tmp/run", *OVERRIDES]


@pytest.mark.parametrize("script,stub,args", [
    ("tpu_pod.py", "gcloud", TPU_ARGS),
    ("slurm.py", "sbatch", ("--config=c.py", "--workdir=/w")),
    ("single_host.py", "fake-python",
     ("--config=c.py", "--workdir=/w", "--gpus=1")),
])
def test_real_run_executes_the_dry_run_command(tmp_path, script, stub, args):
  stubs = _stub_dir(tmp_path, stub)
  env = _stub_env(tmp_path, stubs)
  if stub == "fake-python":
    args += (f"--python={stubs / stub}",)
  expected = shlex.split(_launch(script, *args, "--dry_run", "--", *OVERRIDES,
                                 env=env))
  _launch(script, *args, "--", *OVERRIDES, env=env)
  call = _stub_call(tmp_path)
  if stub == "fake-python":
    assert call["env"]["CUDA_VISIBLE_DEVICES"] == "1"
    expected = expected[expected.index(str(stubs / stub)) + 1:]
  else:
    expected = expected[1:]
  assert call["argv"] == expected

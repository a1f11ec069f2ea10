"""Shared test setup: 8 simulated CPU devices, malloc as the entry points set it, shared fixtures."""
import os
import pathlib

# Must happen before JAX initialises its backends.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()

import pytest  # noqa: E402

from idm_jax import host_memory  # noqa: E402

# As the command-line entry points do: XLA:CPU's large buffers stay mapped between uses.
host_memory.keep_freed_memory()

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
REFERENCE_NPZ = REPO_ROOT.parent / "shared" / "reference" / "idm_official_small.npz"


@pytest.fixture(scope="session")
def reference_npz() -> pathlib.Path:
  """The official-network fixture; its absence is an error, not a skip."""
  if not REFERENCE_NPZ.exists():
    raise FileNotFoundError(f"{REFERENCE_NPZ} is missing: the parity contract needs ../shared/reference/")
  return REFERENCE_NPZ

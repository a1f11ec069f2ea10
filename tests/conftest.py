"""Shared test setup: 8 simulated CPU devices for the sharding tests, paths to shared fixtures."""
import os
import pathlib

# Must happen before JAX initialises its backends.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
REFERENCE_NPZ = REPO_ROOT.parent / "shared" / "reference" / "idm_official_small.npz"


@pytest.fixture(scope="session")
def reference_npz() -> pathlib.Path:
  """The official-network fixture; its absence is an error, not a skip."""
  if not REFERENCE_NPZ.exists():
    raise FileNotFoundError(f"{REFERENCE_NPZ} is missing: the parity contract needs ../shared/reference/")
  return REFERENCE_NPZ

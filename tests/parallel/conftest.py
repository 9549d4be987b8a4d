"""Fixtures shared by the mesh and context tests: each multi-device worker runs once a session.

`meshes` (8 fake devices) trains every mesh of workers.MESHES and Ulysses attention; `one_device`
is the 1-device reference they are all compared with.
"""

import pytest

from tests.parallel import test_meshes as harness
from tests.parallel import workers


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("jax_cache")


@pytest.fixture(scope="session")
def meshes(data_dir, cache_dir, tmp_path_factory):
  """(out dir, results) of 3 steps on every mesh of 8 devices, the data=8 checkpoint resumed on
  fsdp=4 x tensor=2, and (under "context") Ulysses attention and training with it."""
  out = str(tmp_path_factory.mktemp("meshes"))
  return out, harness.run_worker(["meshes", data_dir], 8, cache_dir, out)


@pytest.fixture(scope="session")
def one_device(meshes, data_dir, cache_dir, tmp_path_factory):
  """(out dir, results) of the 1-device reference, the data=8 checkpoint resumed on 1 device
  and the 1-process reference of the two-process run."""
  out = str(tmp_path_factory.mktemp("one_device"))
  return out, harness.run_worker(["one_device", data_dir, meshes[1][workers.SAVED]["workdir"]],
                                 1, cache_dir, out)

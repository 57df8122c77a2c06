"""Data parallelism over devices and hosts with ``jax.sharding``.

One ``Mesh`` with axes ``('data', 'model')`` spans every device of every
process. The batch is split along ``data``; parameters and optimizer state are
replicated (``model`` has size 1 until a model-parallel layout needs it). Under
``jax.jit`` the compiler inserts the collectives: gradients are averaged over
the global batch and BatchNorm computes its statistics over the global batch,
so the same config gives the same result on 1 or N devices.

With several processes (hosts), each one calls ``initialize_distributed``
first, builds the same mesh, reads only its own rows of every global batch
(``host_rows``; the training loader does it) and turns them into one global array with ``put_batch``.
"""

from collections.abc import Mapping
import os
from typing import Any

import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

DATA, MODEL = "data", "model"


def initialize_distributed(coordinator_address: str = "", num_processes: int = 0, process_id: int = -1) -> None:
  """Joins a multi-process run; a no-op for a single process.

  Arguments left empty fall back to ``JAX_COORDINATOR_ADDRESS``,
  ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``. Must run before anything
  touches a device.
  """
  address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
  count = num_processes or int(os.environ.get("JAX_NUM_PROCESSES", "1"))
  index = process_id if process_id >= 0 else int(os.environ.get("JAX_PROCESS_ID", "-1"))
  if count <= 1:
    return
  if not address or index < 0:
    raise ValueError(
        f"A {count}-process run needs a coordinator address and a process id "
        "(--coordinator_address=host:port --process_id=i, or JAX_COORDINATOR_ADDRESS and "
        f"JAX_PROCESS_ID); got address {address!r}, process id {index}."
    )
  jax.distributed.initialize(coordinator_address=address, num_processes=count, process_id=index)
  # CPU (gloo) collectives set up their communicator on first use and give up
  # after 30 s if a process is late; later collectives wait as long as needed.
  # Processes are in step right after initialize: set it up now, not at a
  # first checkpoint or train step that slow data loading or compiling delays.
  multihost_utils.sync_global_devices("tl_jax: distributed initialized")


def make_mesh(model_parallel: int = 1, devices: list[Any] | None = None) -> Mesh:
  """A ``(data, model)`` mesh over ``devices`` (default: all devices of all processes)."""
  devices = list(jax.devices() if devices is None else devices)
  if len(devices) % model_parallel:
    raise ValueError(f"{len(devices)} devices cannot form a mesh with a model axis of "
                     f"{model_parallel}: it must divide the device count.")
  grid = np.array(devices, dtype=object).reshape(len(devices) // model_parallel, model_parallel)
  return Mesh(grid, (DATA, MODEL))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over ``data``, the rest whole."""
  return NamedSharding(mesh, P(DATA))


def replicated(mesh: Mesh) -> NamedSharding:
  """The same full copy on every device."""
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh, what: str = "train.batch_size") -> None:
  """Raises unless ``batch_size`` splits evenly over devices and processes."""
  n, hosts = mesh.shape[DATA], jax.process_count()
  if batch_size % n or batch_size % hosts:
    raise ValueError(
        f"{what}={batch_size} does not split evenly over the {n} devices of the 'data' mesh axis "
        f"({hosts} process(es)): use a multiple of {np.lcm(n, hosts)}."
    )


def host_rows(batch_size: int, shard: tuple[int, int] | None = None) -> slice:
  """The rows of a global batch that a process reads (contiguous, in process order).

  The one definition of a host's share: the training loader
  (``data.pipeline``) and the evaluator both use it.

  Args:
    batch_size: the global batch size.
    shard: (process index, process count); None = this process of this run.
  """
  index, count = shard or (jax.process_index(), jax.process_count())
  if batch_size % count:
    raise ValueError(f"Batch size {batch_size} is not divisible by the {count} hosts.")
  per_host = batch_size // count
  return slice(index * per_host, (index + 1) * per_host)


def put_batch(local: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """This process's rows of a batch -> global arrays sharded over ``data``."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local.items()}


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places a pytree (e.g. the train state) whole on every device of the mesh.

  Every process must pass the same values (built from the same seed), since
  each one supplies the copies on its own devices.
  """
  sharding = replicated(mesh)

  def put(x):
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      data = jax.make_array_from_process_local_data(sharding, np.asarray(jax.random.key_data(x)))
      return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    return jax.make_array_from_process_local_data(sharding, np.asarray(x))

  return jax.tree.map(put, tree)

"""What the train step minimises: plain noise prediction, or distillation from a frozen teacher.

An objective is the loss of the network on one batch. Any arrays it reads besides the trained
parameters (the teacher's) are its `arrays`, which the step passes to its jitted program as an
argument, laid out with `shardings`: closed over, they would be baked into the program as
constants.
"""
import dataclasses
from typing import Any, Callable, Protocol

import jax
import ml_collections
import numpy as np
from flax import nnx

from idm_jax.diffusion import objective
from idm_jax.diffusion import schedules
from idm_jax.diffusion import student

Batch = dict[str, jax.Array]  # lr (B, h, w, 3), hr (B, H, W, 3) in [-1, 1]; p (B,).
# net(lr, y_t, gamma, p) -> output (B, H, W, 3): the trained network, dropout on.
Net = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]


class Objective(Protocol):
  arrays: Any  # Read by the loss besides the parameters; None when nothing.
  shardings: Any  # Their layout on the mesh (a pytree of shardings like `arrays`).

  def __call__(self, net: Net, arrays: Any, batch: Batch, key: jax.Array) -> jax.Array:
    """The scalar loss of `net` on `batch`, its randomness from `key`."""


@dataclasses.dataclass(frozen=True)
class NoisePrediction:
  """The official objective: the network predicts the noise of y_t (`diffusion/objective.py`)."""
  schedule: schedules.NoiseSchedule
  loss_type: str  # 'l1' | 'l2'.
  arrays: Any = None
  shardings: Any = None

  def __call__(self, net: Net, arrays: Any, batch: Batch, key: jax.Array) -> jax.Array:
    del arrays
    return objective.training_loss(net, batch['lr'], batch['hr'], batch['p'], key,
                                   self.schedule, self.loss_type)


@dataclasses.dataclass(frozen=True)
class Distillation:
  """The student's loss against the teacher's few-step paths (`diffusion/student.py`).

  `arrays` are the teacher's parameters, rebuilt into a network with the student's graph.
  """
  graphdef: nnx.GraphDef
  config: ml_collections.ConfigDict  # The experiment config: its distill, diffusion, sampler.
  arrays: Any
  shardings: Any

  def __call__(self, net: Net, arrays: Any, batch: Batch, key: jax.Array) -> jax.Array:
    teacher = nnx.merge(self.graphdef, arrays)
    teacher.eval()
    return student.distill_loss(net, teacher, batch['lr'], batch['hr'].shape[1:3], batch['p'],
                                key, self.config)


def make_objective(config: ml_collections.ConfigDict, graphdef: nnx.GraphDef,
                   restore_teacher: Callable[[], tuple[Any, Any]] | None = None) -> Objective:
  """The objective of `config`: with `distill.teacher` set, distillation from the parameters
  and their shardings that `restore_teacher()` gives."""
  if not config.distill.teacher:
    return NoisePrediction(schedules.make_schedule(config.diffusion), config.diffusion.loss)
  if restore_teacher is None:
    raise ValueError('distill.teacher is set: pass restore_teacher, which gives its parameters.')
  # Before the teacher's (slow) restore, not at the first validation: a schedule at whose levels
  # the student cannot be read.
  student.level_gammas(schedules.make_schedule(config.diffusion, np.float64))
  return Distillation(graphdef, config, *restore_teacher())

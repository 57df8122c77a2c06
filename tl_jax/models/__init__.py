"""Model registry: a plain dict from name to backbone constructor and metadata."""

from collections.abc import Callable, Set
import dataclasses
from typing import Any

import jax.numpy as jnp

from tl_jax.models import efficientnet
from tl_jax.models.classifier import Classifier


@dataclasses.dataclass(frozen=True)
class ModelInfo:
  """What a registry entry declares besides its constructor."""

  backbone: Callable[..., Any]  # keyword arguments -> backbone nn.Module
  resolution: int  # the pretraining input size
  dropout_rate: float  # before the head, as in the original recipe


REGISTRY: dict[str, ModelInfo] = {
    name: ModelInfo(
        backbone=lambda name=name, **kw: efficientnet.efficientnet_lite(name, **kw),
        resolution=res,
        dropout_rate=dropout,
    )
    for name, (_, _, res, dropout) in efficientnet.LITE_SCALING.items()
}


def names() -> list[str]:
  """The registered model names."""
  return sorted(REGISTRY)


def create(
    name: str,
    num_classes: int,
    *,
    dropout_rate: float | None = None,
    drop_path_rate: float = 0.0,
    frozen_bn: Set[str] = frozenset(),
    dtype: Any = jnp.float32,
) -> Classifier:
  """Builds ``Classifier(backbone=name, head of num_classes)``.

  Args:
    name: a key of ``REGISTRY``.
    num_classes: size of the new head; 0 means no head.
    dropout_rate: before the head; ``None`` takes the entry's default.
    drop_path_rate: stochastic depth of the backbone's residual blocks.
    frozen_bn: paths of BatchNorm layers that always use running statistics.
    dtype: compute dtype (parameters stay float32).
  """
  if name not in REGISTRY:
    raise ValueError(f"Unknown model {name!r}; known models: {', '.join(names())}.")
  info = REGISTRY[name]
  backbone = info.backbone(drop_path_rate=drop_path_rate, frozen_bn=frozenset(frozen_bn),
                           dtype=dtype)
  rate = info.dropout_rate if dropout_rate is None else dropout_rate
  return Classifier(backbone=backbone, num_classes=num_classes, dropout_rate=rate, dtype=dtype)

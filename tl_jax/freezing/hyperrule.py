"""BiT-HyperRule: Big Transfer's fine-tuning rule, a function of the dataset alone.

Kolesnikov et al., "Big Transfer (BiT): General Visual Representation
Learning", ECCV 2020, Sec. 3.3, and big_transfer's ``bit_hyperrule.py``
(github.com/google-research/big_transfer):

* resolution: images with area below 96x96 px are resized to 160 and
  randomly cropped to 128; larger ones resized to 448 and cropped to 384 (the
  paper; big_transfer's code uses 512/480);
* schedule: SGD, momentum 0.9, base lr 0.003, batch 512, linear warm-up and
  lr / 10 at each later support: 500 steps for fewer than 20k examples, 10k
  for fewer than 500k, 20k otherwise (supports below);
* mixup (alpha 0.1) above 20k examples, none below;
* no weight decay, the head initialised to zero, and nothing else tuned.
"""

import dataclasses

SMALL, LARGE = 20_000, 500_000
BASE_LR, BATCH_SIZE, MOMENTUM = 0.003, 512, 0.9


@dataclasses.dataclass(frozen=True)
class Rule:
  """The rule's choices for one dataset."""

  precrop: int  # resize to this, then
  crop: int  # random crop (training) / centre crop (eval) to this
  supports: tuple[int, ...]  # warm-up end, then each lr / 10, the last one ends training
  mixup_alpha: float

  @property
  def steps(self) -> int:
    return self.supports[-1]


def resolution(height: int, width: int) -> tuple[int, int]:
  """``(precrop, crop)`` for images of ``height`` x ``width`` px."""
  return (160, 128) if height * width < 96 * 96 else (448, 384)


def supports(dataset_size: int) -> tuple[int, ...]:
  """big_transfer's ``get_schedule``: warm-up end, the decay steps, the final step."""
  if dataset_size < SMALL:
    return (100, 200, 300, 400, 500)
  if dataset_size < LARGE:
    return (500, 3000, 6000, 9000, 10_000)
  return (500, 6000, 12_000, 18_000, 20_000)


def mixup_alpha(dataset_size: int) -> float:
  return 0.0 if dataset_size < SMALL else 0.1


def rule(dataset_size: int, height: int, width: int) -> Rule:
  """The HyperRule for ``dataset_size`` training examples of ``height`` x ``width`` px."""
  if dataset_size <= 0 or height <= 0 or width <= 0:
    raise ValueError(f"BiT-HyperRule needs a positive dataset size and image size, got "
                     f"{dataset_size} examples of {height}x{width} px.")
  return Rule(*resolution(height, width), supports(dataset_size), mixup_alpha(dataset_size))


def lr(step: int, dataset_size: int, base_lr: float = BASE_LR) -> float | None:
  """big_transfer's ``get_lr``: the learning rate at ``step``, ``None`` once training is over."""
  s = supports(dataset_size)
  if step < s[0]:
    return base_lr * step / s[0]
  if step >= s[-1]:
    return None
  return base_lr / 10 ** sum(b < step for b in s[1:])

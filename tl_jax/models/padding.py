"""Padding conventions of the weights' frameworks: TF/Keras "SAME" and torch's symmetric k//2."""


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """TF "SAME" padding (the extra pixel goes after), as lax's ``'SAME'`` does."""
  total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def conv_padding(padding: str, size: int, kernel: int, stride: int) -> tuple[int, int]:
  """Padding of one spatial axis: ``"SAME"`` (TF/Keras) or ``"torch"`` (k//2 both sides).

  The two agree except for strided convolutions on even sizes, where TF puts
  the one padding pixel after; weights only fit the convention they were
  trained with.
  """
  if padding == "SAME":
    return same_padding(size, kernel, stride)
  if padding == "torch":
    return kernel // 2, kernel // 2
  raise ValueError(f"Unknown padding {padding!r}; use 'SAME' (TF/Keras) or 'torch'.")

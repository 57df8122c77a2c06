"""tl_jax: transfer learning of convolutional image classifiers in JAX/Flax."""

__version__ = "0.1.0"

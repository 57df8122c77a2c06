"""``python -m tl_jax COMMAND [flags]``: the ``tl-jax`` command (``tl_jax.cli.main``)."""

from tl_jax.cli import main

if __name__ == "__main__":
  main.main(prog="python -m tl_jax")

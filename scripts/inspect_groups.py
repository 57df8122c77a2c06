"""Prints which parameter lands in which group, without training: tl_jax/cli/inspect_groups.py, its flags and commands (installed: `tl-jax inspect`)."""
from tl_jax.cli import main
if __name__ == "__main__":
  main.run("inspect")

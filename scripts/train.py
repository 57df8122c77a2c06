"""Trains a config; rerun the same command to resume: tl_jax/cli/train.py, its flags and commands (installed: `tl-jax train`)."""
from tl_jax.cli import main
if __name__ == "__main__":
  main.run("train")

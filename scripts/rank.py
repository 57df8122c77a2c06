"""Ranks pretrained models, and with --stages their cut points, for a dataset: no training: tl_jax/cli/rank.py, its flags and commands (installed: `tl-jax rank`)."""
from tl_jax.cli import main
if __name__ == "__main__":
  main.run("rank")

"""Evaluates a saved checkpoint of a run in a fresh process: tl_jax/cli/evaluate.py, its flags and commands (installed: `tl-jax evaluate`)."""
from tl_jax.cli import main
if __name__ == "__main__":
  main.run("evaluate")

"""A run's checkpoint as a serving artifact (StableHLO through jax.export; tl_jax.evaluate.export): tl_jax/cli/export.py, its flags and commands (installed: `tl-jax export`)."""
from tl_jax.cli import main
if __name__ == "__main__":
  main.run("export")

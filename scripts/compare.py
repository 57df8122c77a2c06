"""Transfer vs. scratch: sweeps strategies x training-set sizes, writes a table and a plot: tl_jax/cli/compare.py, its flags and commands (installed: `tl-jax compare`)."""
from tl_jax.cli import main
if __name__ == "__main__":
  main.run("compare")

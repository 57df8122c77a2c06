"""Top-k class names with probabilities for image files or folders: tl_jax/cli/predict.py, its flags and commands (installed: `tl-jax predict`)."""
from tl_jax.cli import main
if __name__ == "__main__":
  main.run("predict")

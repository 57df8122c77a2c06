"""The packaged config tl_jax/configs/finetune_modern.py, under its repository name (configs.finetune_modern).

Its docstring (the command and the expected result) is this module's too.
"""

from tl_jax.configs.finetune_modern import *
from tl_jax.configs.finetune_modern import __doc__, get_config  # noqa: F401

"""The packaged config tl_jax/configs/compare_digits.py, under its repository name (configs.compare_digits).

Its docstring (the command and the expected result) is this module's too.
"""

from tl_jax.configs.compare_digits import *
from tl_jax.configs.compare_digits import __doc__, get_config  # noqa: F401

"""The packaged config tl_jax/configs/bit_hyperrule.py, under its repository name (configs.bit_hyperrule).

Its docstring (the command and the expected result) is this module's too.
"""

from tl_jax.configs.bit_hyperrule import *
from tl_jax.configs.bit_hyperrule import __doc__, get_config  # noqa: F401

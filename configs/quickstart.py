"""The packaged config tl_jax/configs/quickstart.py, under its repository name (configs.quickstart).

Its docstring (the command and the expected result) is this module's too.
"""

from tl_jax.configs.quickstart import *
from tl_jax.configs.quickstart import __doc__, get_config  # noqa: F401

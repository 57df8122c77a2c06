"""Experiment configs, one ``get_config()`` per file; each docstring gives its command and expected result.

A config built on another imports it like any module (``from configs import
quickstart``). This package is the repository's, not installed with ``tl_jax``: a
``--config configs/x.py`` given to ``tl-jax`` or ``scripts/`` puts the folder above it on
``sys.path`` (``tl_jax.cli.main``), and ``PYTHONPATH=.`` does it for other imports.
The configs a user starts from (quickstart, linear_probe_digits, compare_digits,
bit_hyperrule, finetune_modern) ship in ``tl_jax.configs``; their files here re-export them.
"""

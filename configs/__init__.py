"""Experiment configs, one ``get_config()`` per file; each docstring gives its command and expected result.

A config built on another imports it like any module (``from configs import
quickstart``): run scripts from the repository root after ``pip install -e .``
(which installs this package next to ``tl_jax``), or with ``PYTHONPATH=.``.
"""

"""The command line: ``tl-jax COMMAND [flags]`` (or ``python -m tl_jax COMMAND``), installed with the package.

``main``: the entry point (``COMMANDS``, ``run``, and ``--config NAME`` for the packaged configs).
One module per command, each with its absl flags and ``main(argv)``; ``scripts/<module>.py`` runs
the same module: ``train`` (``tl-jax train``), ``evaluate``, ``predict``, ``inspect_groups``
(``tl-jax inspect``), ``compare``, ``rank`` and ``export``.
"""

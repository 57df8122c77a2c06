"""Freezing: which parameters train, how fast, and with which BatchNorm mode.

- ``strategies``: the transfer presets (``linear_probe``, ``top_k_stages``, ``freeze_first_k``,
  ``layers``, ``full``) that expand to ``(regex, label)`` rules, and ``config.phases``.
- ``plan``: ``Plan.from_config(config, params, batch_stats)``, the run's plan read once from the
  config: per phase the label of every parameter, BatchNorm modes, lr multipliers, layer decay.
- ``optim``: ``ParamGroups`` (one phase of the plan) and ``make_optimizer``, the
  ``optax.multi_transform`` that gives frozen groups no state and no update; L2-SP.
- ``inspect_groups``: the plan as a table (``scripts/inspect_groups.py``).
- ``hyperrule``: BiT-HyperRule's schedule and resolution from the dataset size.

The rule convention itself (full-match, first rule wins, all covered) is ``tl_jax.partition``.
"""

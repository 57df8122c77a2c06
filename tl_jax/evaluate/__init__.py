"""Checkpoints evaluated after the fact, and prediction.

- ``evaluation``: ``evaluate_checkpoint(workdir, which, split)`` on the run's own data,
  ``evaluate(workdir, spec)`` on any labelled data (``folder:``, ``npz:``, ``tfds:``),
  ``restore`` and ``confident_errors``.
- ``predict``: ``from_workdir`` / ``from_pretrained`` predictors, ``probabilities`` and ``rank``.
"""

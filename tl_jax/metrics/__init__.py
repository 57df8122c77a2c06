"""Metrics of a split, below ``train/`` (the trainer reports every epoch).

- ``classification``: confusion matrix, top-k, accuracy and per-class precision/recall/F1.
- ``report``: ``evaluate_split`` (a state over a whole split) and ``write_report``.
- ``plots``: confusion matrices, training curves, comparison plots.
"""

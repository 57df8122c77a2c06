"""Metrics of a split, below ``train/`` (the trainer reports every epoch).

- ``classification``: confusion matrix, top-k, accuracy and per-class precision/recall/F1.
- ``calibration``: ECE, classwise ECE, NLL, Brier score and reliability bins of a split's logits.
- ``intervals``: Wilson intervals, McNemar's exact test, the paired bootstrap, spread across seeds.
- ``report``: ``evaluate_split`` (a state over a whole split) and ``write_report``.
- ``plots``: confusion matrices, reliability diagrams, training curves, comparison plots.
"""

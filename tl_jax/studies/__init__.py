"""Research built on runs.

- ``compare``: ``sweep`` trains one config under several transfer strategies and sizes
  (``scripts/compare.py``) and writes tables and plots.
- ``probe``: the linear-probe protocol (L2 grid chosen on validation) on features.
- ``probe_sweep``: probes per model and per cut point on cached pooled features.
- ``probe_folds``: the probe tested by stratified k-fold over all the images, with paired tests.
- ``transferability``: scores that rank models and cut points from one forward pass (LogME, LEEP,
  NCE, H-score, regularised H-score, TransRate).
- ``rank``: ``rank(data, models, workdir=...)`` scores models and cut points from one forward pass
  each (``scripts/rank.py``) and writes the table and plot.
- ``rank_check``: do the scores predict the accuracy reached? Kendall's tau and weighted tau
  (``scripts/rank_study.py``).
- ``fewshot``: big_vision's few-shot linear protocol (closed-form regularised least squares,
  1/5/10/25 shots, several seeds): ``protocol`` on features, ``evaluate_run`` on a checkpoint.
"""

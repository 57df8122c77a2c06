"""Research built on runs.

- ``compare``: ``sweep`` trains one config under several transfer strategies and sizes
  (``scripts/compare.py``) and writes tables and plots.
- ``probe``: the linear-probe protocol (L2 grid chosen on validation) on features.
- ``probe_sweep``: probes per model and per cut point on cached pooled features.
- ``transferability``: scores that rank models and cut points from one forward pass (LogME, LEEP,
  NCE, H-score, regularised H-score, TransRate).
"""

"""Checkpoints evaluated after the fact, and prediction.

- ``evaluation``: ``evaluate_checkpoint(workdir, which, split)`` on the run's own data,
  ``evaluate(workdir, spec)`` on any labelled data (``folder:``, ``npz:``, ``tfds:``),
  ``restore`` and ``confident_errors``.
- ``predict``: ``from_workdir`` / ``from_hub`` / ``from_pretrained`` predictors, ``probabilities`` and ``rank``.
- ``tta``: test-time augmentation: ``eval_fn("flip")`` for splits, ``file_probabilities(predictor, path,
  "flip" | "five_crop" | "ten_crop")`` for image files (``predict.predict(..., tta=)``); logits averaged.
- ``averaging``: ``average(workdir, out, last=k)``: a run's last checkpoints averaged into a new
  evaluable run, BatchNorm statistics averaged or recomputed.
- ``wise_ft``: ``wise_ft(workdir, which, alphas)``: the backbone interpolated between the pretrained
  start and the checkpoint (head kept), evaluated per alpha; ``interpolate``.
- ``soups``: ``soup(workdirs)``: uniform and greedy model soups beside the best single run.
- ``temperature``: temperature scaling: ``fit`` (NLL on val), ``save`` / ``load`` with the run
  (``calibration.json``), ``calibrate(workdir, which)`` (test before/after).
- ``export``: ``stablehlo(workdir, which, output)``: the checkpoint as a ``jax.export`` artifact
  (uint8 images in, logits out, any batch), ``load(path)``; ``onnx(workdir, which, output)``: the same
  as ONNX (``jax2onnx``, the ``onnx`` extra); ``save_stablehlo`` / ``save_onnx`` of a ``Servable``.
- ``hub``: ``push(workdir, "owner/name")``: a checkpoint, its config, classes, preprocessing and a model
  card to the Hugging Face hub in one commit; ``pull(repo)`` (a ``Restored``); ``init.path="hf://owner/name"``.
"""

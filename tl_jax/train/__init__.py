"""Training: ``trainer.train_and_evaluate(config, workdir)``, the only impure loop.

- ``trainer``: set-up, restore, the loop, the final evaluation.
- ``state``: the train state of a phase (``create_state``, ``next_phase``, ``abstract_state``).
- ``cadence``: when the loop evaluates and checkpoints (epochs, steps); ``window``: the step
  metrics since the last evaluation, kept with a checkpoint saved without one.
- ``preemption``: SIGTERM/SIGINT save the step under way and stop (exit status 75); JAX's
  preemption sync point in multi-process runs.
- ``steps``: the pure, jitted ``train_step`` / ``eval_step`` and ``TrainState``.
- ``guard``: the divergence guard (NaN/Inf losses).
- ``checkpoint``: verified Orbax checkpoints (``Checkpoints``); ``workdir``: what a run's folder
  holds (config, class names, metrics records); ``workdir_lock``: one writer per workdir.
- ``tensorboard_log``: TensorBoard events (and through them ``wandb_log``: the same scalars to Weights &
  Biases, ``log.wandb``); ``ema``: weight averages.
- ``feature_cache``: training the head on cached backbone features when that changes nothing.
- ``config_checks``: a config's errors found before anything runs.
- ``nnx``: every model as a Flax NNX module (``create``), its parameter groups, ``nnx.Optimizer``
  and steps.
"""

"""A run's checkpoint on the Hugging Face hub: ``push`` it as one commit, ``pull`` it back.

``push(workdir, "owner/name")`` commits, all in one commit (the hub applies a commit whole or not
at all, so a push that fails leaves the repo as it was), what a reader of the run needs:

  config.json         the run's config, as its workdir holds it
  model.safetensors   the checkpoint's variables in tl_jax's path layout (``params/backbone/.../kernel``,
                      ``batch_stats/...``): the weights the run tested (``train.best_by``); its
                      metadata's ``tl_jax`` entry names the model, weight source, step and weights
  class_names.json    label i of the head is ``class_names[i]``
  preprocessing.json  ``weights``: the input the weights expect (``export.preprocessing``: size, resize,
                      interpolation, mean, std, crop); ``eval``: the run's own evaluation view
                      (``data.image_size``, ``data.resize``, ``data.stream`` crop fraction, interpolation)
  README.md           a model card: the test metrics (``summary.json``, the step's ``report.json``) and
                      the confusion matrix (``confusion_matrix.png``, when the report has one)

``pull("owner/name")`` downloads config.json, class_names.json and model.safetensors through
``huggingface_hub`` (its cache; ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, ``HF_TOKEN``) and returns an
``evaluation.Restored``, as ``evaluation.restore`` does for a workdir: ``predict.from_run(pull(repo))``,
or ``predict.from_hub(repo)``. ``init.path="hf://owner/name"`` starts a new run from the weights
(``weights.load_pretrained``).
"""

import json
import os
from typing import Any

import ml_collections

from tl_jax import models, partition, weights
from tl_jax.evaluate import evaluation, export
from tl_jax.train import ema, trainer
from tl_jax.weights import download, formats

WEIGHTS_FILE = "model.safetensors"


class PushError(RuntimeError):
  """A push failed before its commit: the repo holds nothing of it. The message says what failed."""


def _variables(run: evaluation.Restored, which_weights: str) -> dict[str, Any]:
  chosen = ema.weights(run.state, which_weights)
  return partition.flatten({"params": chosen.params, "batch_stats": chosen.batch_stats or {}})


def _json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def _report(workdir: str, step: int) -> tuple[dict[str, Any] | None, str | None]:
  """The test report of ``step`` the trainer (or ``evaluate_checkpoint``) wrote, and its folder."""
  folder = os.path.join(workdir, "eval", f"test_step{step}")
  path = os.path.join(folder, "report.json")
  return (_json(path), folder) if os.path.exists(path) else (None, None)


def _card(repo_id: str, run: evaluation.Restored, which_weights: str, summary: dict[str, Any] | None,
          report: dict[str, Any] | None, has_confusion: bool) -> str:
  c = run.config
  lines = ["---", "library_name: tl_jax", "pipeline_tag: image-classification",
           f"tags: [image-classification, jax, flax, tl_jax, {c.model.name}]", "---", "",
           f"# {repo_id}", "",
           (f"`{c.model.name}` fine-tuned with tl_jax on `{c.data.name}` "
           f"({len(run.class_names)} classes, {c.data.image_size} px): checkpoint of step {run.step}, "
           f"{which_weights} weights. Pretrained start: `{c.init.get('path') or c.init.get('source') or 'default'}`"
           f"{'' if c.init.pretrained else ' (none: from scratch)'}."), ""]
  if report is not None:
    lines += ["## Test metrics", "", f"Step {run.step} on the run's test split (`eval/test_step{run.step}/report.json`):",
              "", "| metric | value |", "| --- | --- |"]
    lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
              for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    lines.append("")
  if summary is not None:
    lines += ["## The run", "", "| checkpoint | step | test accuracy | test macro F1 |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {summary.get(f'{name}_step', summary.get('final_step'))} | "
              f"{summary[f'{name}_test_accuracy']:.4f} | {summary[f'{name}_test_macro_f1']:.4f} |"
              for name in ("final", "best") if f"{name}_test_accuracy" in summary]
    lines.append("")
  if has_confusion:
    lines += ["## Confusion matrix", "", "![confusion matrix](confusion_matrix.png)", ""]
  lines += ["## Use", "", "```python", "from tl_jax.evaluate import hub, predict", "",
            f'predictor = predict.from_hub("{repo_id}")  # predict.predict(predictor, ["image.png"])',
            f'run = hub.pull("{repo_id}")  # config, state, step, class_names', "```", "",
            f'A new run from these weights: `--config.init.path=hf://{repo_id}` (model.name `{c.model.name}`).', ""]
  return "\n".join(lines)


def files(workdir: str, run: evaluation.Restored, repo_id: str) -> dict[str, bytes | str]:
  """What ``push`` commits for ``run`` (``evaluation.restore(workdir, which)``): ``{path in the
  repo: bytes, or a local file's path}``."""
  which_weights = evaluation.default_weights(run.config)
  c = run.config
  stream = dict(c.data.get("stream") or {})
  prep = {"weights": export.preprocessing(run),
          "eval": {"image_size": c.data.image_size, "resize": c.data.get("resize", ""),
                   "crop_fraction": stream.get("crop_fraction"), "interpolation": stream.get("interpolation")}}
  summary_path = os.path.join(workdir, "summary.json")
  summary = _json(summary_path) if os.path.exists(summary_path) else None
  report, folder = _report(workdir, run.step)
  confusion = os.path.join(folder, "confusion_matrix.png") if folder else ""
  out = {
      "config.json": os.path.join(workdir, "config.json"),
      WEIGHTS_FILE: formats.safetensors_bytes(
          _variables(run, which_weights), model=c.model.name,
          source=c.init.get("source") or models.REGISTRY[c.model.name].weights,
          step=run.step, weights=which_weights),
      "class_names.json": json.dumps(run.class_names).encode(),
      "preprocessing.json": json.dumps(prep, indent=1).encode(),
      "README.md": _card(repo_id, run, which_weights, summary, report, os.path.exists(confusion)).encode(),
  }
  if os.path.exists(confusion):
    out["confusion_matrix.png"] = confusion
  return out


def push(workdir: str, repo_id: str, which: str | int = "best", *, token: str | None = None,
         private: bool | None = None, commit_message: str = "") -> dict[str, Any]:
  """Uploads checkpoint ``which`` of ``workdir`` (see the module doc) to the hub repo ``repo_id``.

  Args:
    workdir: a run's workdir.
    repo_id: ``owner/name``; created if missing.
    which: ``best``, ``latest`` or a step.
    token: a hub token with write access; None: ``HF_TOKEN`` or the saved login.
    private: the visibility of a new repo; None: the hub's default. An existing repo keeps its own.
    commit_message: default "tl_jax: <model> on <data>, step <N>".

  Returns:
    ``{'repo_id', 'commit', 'url', 'step', 'files'}``.

  Raises:
    PushError: the repo could not be created or the commit failed; nothing of this push was committed.
  """
  import huggingface_hub

  run = evaluation.restore(workdir, which)
  content, step = files(workdir, run, repo_id), run.step
  api = huggingface_hub.HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)
  message = commit_message or f"tl_jax: {run.config.model.name} on {run.config.data.name}, step {step}"
  try:
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.create_commit(repo_id, [huggingface_hub.CommitOperationAdd(path, data)
                                       for path, data in content.items()], commit_message=message)
  except Exception as e:  # huggingface_hub's HTTP errors, a cut connection, a refused file
    raise PushError(f"Pushing {workdir} (step {step}) to the hub repo {repo_id} failed: {type(e).__name__}: {e}\n"
                    "Nothing of this push was committed (the hub applies a commit whole or not at all): "
                    "the repo is as it was. Push again.") from e
  return {"repo_id": repo_id, "commit": info.oid, "url": info.commit_url, "step": step, "files": sorted(content)}


def pull(repo_id: str, revision: str | None = None) -> evaluation.Restored:
  """The run ``push`` uploaded to ``repo_id`` (at ``revision``: a branch, tag or commit; default main),
  restored for evaluation and prediction like ``evaluation.restore``.

  The state holds the pushed weights (those the run tested) as its weights, so its config's
  ``train.best_by`` is "raw"; the optimizer state is not part of a push.
  """
  hint = f"(hf://{repo_id}: a tl_jax run pushed with tl_jax.evaluate.hub.push)"
  get = lambda name, **kw: download.fetch_hub(repo_id, name, hint, revision=revision, **kw)
  config = ml_collections.ConfigDict(_json(get("config.json", verify=False)))
  class_names = [str(n) for n in _json(get("class_names.json", verify=False))]
  path = get(WEIGHTS_FILE)
  loaded = formats.read_converted(path, config.model.name)
  step = int(formats.safetensors_info(path).get("step", 0))
  config.train.best_by = "raw"  # the file's weights are the ones the run chose
  plan = trainer.plan_of(config, len(class_names))
  abstract = trainer.abstract_state(config, len(class_names), 1, plan.phase_of_checkpoint(step), plan=plan)
  variables = weights.merge({"params": abstract.params, "batch_stats": abstract.batch_stats}, loaded)
  state = abstract.replace(params=variables["params"], batch_stats=variables.get("batch_stats", {}),
                           ema_params=None, ema_batch_stats=None)
  return evaluation.Restored(config, state, step, class_names)

"""Class probabilities for image files: from a run's checkpoint or a pretrained ImageNet model.

``from_workdir(W)`` predicts the run's classes at its ``data.image_size``, each file
resized as the run's evaluation does (``data.resize``: the center crop of ``data.stream``, or squash);
``from_hub("owner/name")`` the same for a run pushed to the Hugging Face hub (``hub``);
``from_pretrained(name)`` the 1000 ImageNet classes, named by ``imagenet_classes()``
(shipped with the package), with the published preprocessing of its weights
(``models.preprocessing``: size, resize, crop, interpolation).
"""

from collections.abc import Callable, Iterable, Sequence
import csv
import dataclasses
import functools
import importlib.resources
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from tl_jax import data as data_lib, models, weights
from tl_jax.data import decode, image_folder, streaming
from tl_jax.evaluate import tta as tta_lib
from tl_jax.train import ema


@functools.cache
def imagenet_classes() -> tuple[tuple[str, str], ...]:
  """ImageNet-1k in label order: ``(WordNet synset id, lemmas)``, e.g. ``('n02123045', 'tabby, tabby cat')``."""
  text = importlib.resources.files("tl_jax").joinpath("resources/imagenet_classes.txt").read_text()
  rows = tuple(tuple(line.split("\t", 1)) for line in text.splitlines() if line and not line.startswith("#"))
  assert len(rows) == 1000, f"imagenet_classes.txt has {len(rows)} classes, expected 1000"
  return rows


def imagenet_class_names() -> list[str]:
  """The first lemma of every ImageNet class (``tabby``, ``espresso``)."""
  return [lemmas.split(",")[0] for _, lemmas in imagenet_classes()]


@dataclasses.dataclass(frozen=True)
class Predictor:
  """``probabilities(uint8 images (N, S, S, 3)) -> (N, classes)`` with ``S = image_size``; files
  become such images with ``crop_fraction``, ``interpolation`` and ``crop`` (``load_image``)."""

  probabilities: Callable[[np.ndarray], np.ndarray]
  image_size: int
  class_names: list[str]
  source: str  # what made it: "<workdir> step N" or "<model> (ImageNet)"
  crop_fraction: float = 0.875
  interpolation: str = "bilinear"
  crop: str = "center"  # or "squash" (models.Preprocessing.crop)


def _softmax_fn(apply_fn, variables, temperature: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
  fn = jax.jit(lambda v, x: jax.nn.softmax(apply_fn(v, x, train=False)[0].astype(jnp.float32) / temperature, -1))
  return lambda images: np.asarray(fn(variables, images))


def from_run(run, weights: str = "raw", temperature: float = 1.0) -> Predictor:
  """A restored checkpoint (``evaluation.restore``) as a predictor of its run's classes,
  with its ``weights`` ("raw" or "ema", the moving average); logits divided by ``temperature``."""
  chosen = ema.weights(run.state, weights)
  variables = {"params": chosen.params, "batch_stats": chosen.batch_stats}
  stream = {**streaming.DEFAULTS, **dict(run.config.data.get("stream") or {})}
  return Predictor(_softmax_fn(run.state.apply_fn, variables, temperature), run.config.data.image_size, run.class_names,
                   f"step {run.step}" + (", ema weights" if weights == "ema" else ""),
                   stream["crop_fraction"] or 0.875, stream["interpolation"] or "bilinear",
                   "squash" if data_lib.default_resize(run.config.data) == "squash" else "center")


def from_workdir(workdir: str, which: str | int = "best", weights: str | None = None) -> Predictor:
  """The run's checkpoint ``which`` (``best``, ``latest`` or a step), predicting the classes it
  trained on (stored with the run) with ``weights``: None = those the run chose its best
  checkpoint by (``evaluation.default_weights``). The run's temperature for this checkpoint
  (``temperature.load``, fitted by ``scripts/evaluate.py --calibrate``) divides the logits when saved."""
  from tl_jax.evaluate import evaluation, temperature  # imports the trainer: only this constructor needs it

  run = evaluation.restore(workdir, which)
  weights = weights or evaluation.default_weights(run.config)
  t = temperature.load(workdir, run.step, weights)
  predictor = from_run(run, weights, t or 1.0)
  return dataclasses.replace(predictor, source=f"{workdir} {predictor.source}")


def from_hub(repo_id: str, revision: str | None = None) -> Predictor:
  """A run pushed to the Hugging Face hub (``hub.push``) as a predictor of its classes, fed as the
  run's evaluation fed its images; downloaded once into huggingface_hub's cache (``hub.pull``)."""
  from tl_jax.evaluate import hub  # imports the trainer: only this constructor needs it

  predictor = from_run(hub.pull(repo_id, revision))
  return dataclasses.replace(predictor, source=f"hf://{repo_id}{'@' + revision if revision else ''} "
                                               f"{predictor.source}")


def from_pretrained(name: str, *, path: str | None = None, source: str | None = None) -> Predictor:
  """Model ``name`` with its pretrained ImageNet classifier (the weight file must hold one), fed
  as ``source``'s weights were evaluated (``models.preprocessing``)."""
  prep = models.preprocessing(name, source)
  loaded = weights.load_pretrained(name, path=path, source=source)
  head = loaded.get(f"params/{models.Classifier.HEAD}/kernel")
  if head is None or head.shape[-1] != 1000:
    raise ValueError(f"The {name} weights hold no ImageNet classifier (a headless file?): "
                     "--model needs weights with their 1000-class head.")
  model, size = models.create(name, 1000, source=source), prep.size
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, size, size, 3), jnp.uint8)))
  variables = weights.merge(variables, loaded)
  return Predictor(_softmax_fn(model.apply, variables), size, imagenet_class_names(), f"{name} (ImageNet)",
                   prep.crop_fraction, prep.interpolation, prep.crop)


def list_images(inputs: Iterable[str]) -> list[str]:
  """Image files among ``inputs``: files as given, folders searched recursively (sorted)."""
  files, missing = [], []
  for item in inputs:
    if os.path.isdir(item):
      for folder, dirs, names in sorted(os.walk(item)):
        dirs.sort()
        files += [os.path.join(folder, n) for n in sorted(names)
                  if n.lower().endswith(image_folder.EXTENSIONS) and not n.startswith(".")]
    elif os.path.isfile(item):
      files.append(item)
    else:
      missing.append(item)
  if missing:
    raise FileNotFoundError(f"No such file or folder: {missing}")
  if not files:
    raise ValueError(f"No image files ({', '.join(image_folder.EXTENSIONS)}) in {list(inputs)}.")
  return files


def load_image(path: str, predictor: Predictor) -> np.ndarray:
  """``path`` as the predictor's ``(image_size, image_size, 3)`` uint8 RGB input: decoded upright
  (``decode.open_rgb``), then the run's or the weights' evaluation crop (``streaming.eval_view``).

  Raises:
    decode.BadImage: the file cannot be decoded (the message names it).
  """
  return streaming.eval_view(decode.open_rgb(path), predictor.image_size, predictor.crop_fraction,
                             predictor.interpolation, predictor.crop)


def probabilities(predictor: Predictor, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
  """``(N, classes)`` probabilities of uint8 images already at ``predictor.image_size``."""
  out = []
  for start in range(0, len(images), batch_size):
    chunk = np.asarray(images[start:start + batch_size])
    pad = batch_size - len(chunk)  # one shape: compiles once
    out.append(predictor.probabilities(np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], np.uint8)]))[:len(chunk)])
  return np.concatenate(out) if out else np.zeros((0, len(predictor.class_names)), np.float32)


def rank(predictor: Predictor, probs: np.ndarray, k: int = 5) -> list[list[dict[str, Any]]]:
  """Per row of ``probs``: the ``k`` most probable classes, ``[{'class', 'index', 'probability'}]``."""
  k = max(1, min(k, len(predictor.class_names)))
  return [[{"class": predictor.class_names[i], "index": int(i), "probability": float(p[i])}
           for i in np.argsort(-p, kind="stable")[:k]] for p in probs]


def predict(predictor: Predictor, paths: Sequence[str], top_k: int = 5,
            batch_size: int = 16, tta: str = "none") -> list[dict[str, Any]]:
  """The ``top_k`` classes of every image file, in order: ``{'path', 'top_k': [{'class', 'index',
  'probability'}]}``; a file that cannot be decoded gets ``{'path', 'top_k': [], 'error'}`` and the
  others are predicted. Files are decoded one batch at a time (memory: one batch of images).
  ``tta``: "flip", "five_crop" or "ten_crop" averages the logits of each file's views (``tta``)."""
  if tta != "none":
    results = []
    for path in paths:
      try:
        probs = tta_lib.file_probabilities(predictor, path, tta)
        results.append({"path": path, "top_k": rank(predictor, probs[None], top_k)[0]})
      except decode.BadImage as e:
        results.append({"path": path, "top_k": [], "error": str(e)})
    return results
  results = []
  for start in range(0, len(paths), batch_size):
    chunk, images = [], []
    for path in paths[start:start + batch_size]:
      try:
        images.append(load_image(path, predictor))
        chunk.append({"path": path})
      except decode.BadImage as e:
        chunk.append({"path": path, "top_k": [], "error": str(e)})
    if images:
      ranked = iter(rank(predictor, probabilities(predictor, np.stack(images), batch_size), top_k))
      for r in chunk:
        if "error" not in r:
          r["top_k"] = next(ranked)
    results += chunk
  return results


def write(results: list[dict[str, Any]], path: str) -> None:
  """``.json`` (the list as is) or ``.csv`` (one row per image and rank)."""
  if path.endswith(".json"):
    with open(path, "w") as f:
      json.dump(results, f, indent=1)
  elif path.endswith(".csv"):
    with open(path, "w", newline="") as f:
      writer = csv.writer(f)
      writer.writerow(["path", "rank", "class", "index", "probability", "error"])
      for r in results:
        if r.get("error"):
          writer.writerow([r["path"], "", "", "", "", r["error"]])
        for pos, t in enumerate(r["top_k"], 1):
          writer.writerow([r["path"], pos, t["class"], t["index"], f"{t['probability']:.6f}", ""])
  else:
    raise ValueError(f"--output {path!r}: use a .csv or .json file name.")

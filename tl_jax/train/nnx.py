"""tl_jax's models as Flax NNX modules, on Flax's Linen->NNX bridge (``flax.nnx.bridge.ToNNX``).

``create(name, num_classes)`` returns an ``nnx.Module`` holding the pretrained weights
(``weights.load_pretrained`` merged strictly, the new head left out, as ``state.create_state``
does), whose variables sit at tl_jax's public paths (``backbone/stage3/block2/expand_conv/kernel``,
``head/kernel``; the BatchNorm statistics beside their scale and bias). It runs the Linen
``models.Classifier`` itself, so its numbers are the Linen model's, BatchNorm modes included::

  import functools
  from flax import nnx
  from tl_jax.train import nnx as tl_nnx

  model = tl_nnx.create("efficientnet_lite0", 10)                  # pretrained, zero 10-class head
  groups = tl_nnx.param_groups(model, dict(rules=(("head/.*", "head"), (".*", "frozen"))))
  tl_nnx.set_bn(model, groups)                                     # frozen groups: running statistics
  optimizer = tl_nnx.optimizer(model, dict(name="adam", lr=1e-3, schedule="constant"), groups, 100)
  step = nnx.jit(functools.partial(tl_nnx.train_step, trainable=tl_nnx.trainable(groups)))
  metrics = step(model, optimizer, {"image": images, "label": labels})
  # or nnx.cached_partial(step, model, optimizer)(batch): no per-call graph walk (docs/nnx.md)

The parameter groups are ``freezing.optim.ParamGroups`` (the same ``(regex, label)`` rules,
presets and per-label settings as ``config.param_groups``) and the optimizer is
``freezing.optim.make_optimizer``'s ``optax.multi_transform``: frozen groups get
``optax.set_to_zero``. ``train_step`` differentiates only the trainable parameters
(``nnx.DiffState`` with ``trainable``'s filter), so a frozen backbone costs no backward compute.
``labels`` gives the label tree for an ``optax.multi_transform`` of one's own; ``inspect``
the parameter-group table of ``scripts/inspect_groups.py`` (``freezing.inspect_groups``).
``linen_variables`` / ``load_linen_variables`` convert to and from the Linen
``{'params', 'batch_stats'}`` dict (what Orbax checkpoints of either side hold).
"""

from collections.abc import Callable, Mapping
import dataclasses
from typing import Any

from flax import nnx, traverse_util
from flax.nnx import bridge
import jax
import jax.numpy as jnp
import optax

from tl_jax import models, partition, weights
from tl_jax.freezing import inspect_groups, optim
from tl_jax.freezing.plan import Plan
from tl_jax.train import steps

BN_MODES = ("batch", "running", "train_affine")
# Linen collection -> the NNX variable type the bridge gives it.
_COLLECTIONS = (("params", nnx.Param), ("batch_stats", nnx.BatchStat))


class Classifier(bridge.ToNNX):
  """A Linen ``models.Classifier`` as an NNX module: ``model(images, train=False) -> (logits, features)``.

  ``train=True`` runs dropout and stochastic depth (rng stream ``dropout``) and normalises with
  batch statistics, updating the running ones in place, except in the BatchNorm layers that
  ``set_bn`` froze; ``train=False`` uses the running statistics, as Linen's ``apply``.
  """

  def __call__(self, images, train: bool = False, **kwargs):
    if not train:
      return super().__call__(images, train=False, mutable=False, **kwargs)
    # The bridge stores the updated statistics as new BatchStat objects; put the new values into the
    # old ones and those back, so that every holder of the model's Variables sees the update
    # (``nnx.cached_partial`` caches them: else it would read replaced, possibly donated, arrays).
    before = {k: v for k, v in vars(self).items() if not k.startswith(("to_nnx__", "_pytree__"))}
    old = {p: v for p, v in traverse_util.flatten_dict(before).items() if isinstance(v, nnx.BatchStat)}
    out = super().__call__(images, train=True, mutable=["batch_stats"], **kwargs)
    if old and not self._pytree__state.initializing:
      new = traverse_util.flatten_dict({k: getattr(self, k) for k in before})
      for path, variable in old.items():
        if new[path] is not variable:
          variable.set_value(new[path].get_value())
      for k, v in before.items():
        setattr(self, k, nnx.data(v))
    return out


def _path(keys) -> str:
  """``('backbone', 'stem', 'conv', 'kernel')`` or a JAX key path -> ``backbone/stem/conv/kernel``."""
  names = [getattr(k, "key", k) for k in keys if not isinstance(k, jax.tree_util.GetAttrKey)]
  return "/".join(str(n) for n in names)


def linen_variables(model: nnx.Module) -> dict[str, Any]:
  """The Linen variables ``{'params': ..., 'batch_stats': ...}`` of ``model`` (plain nested dicts
  of arrays, no ``batch_stats`` for a model without BatchNorm): what ``Classifier.apply`` takes."""
  out = {}
  for collection, kind in _COLLECTIONS:
    tree = nnx.to_pure_dict(nnx.state(model, kind))
    if tree or collection == "params":
      out[collection] = tree
  return out


def load_linen_variables(model: nnx.Module, variables: Mapping[str, Any]) -> None:
  """Writes Linen ``variables`` (e.g. a trainer checkpoint's ``params`` and ``batch_stats``) into
  ``model``, in place; every variable of ``model`` must be given, with its shape."""
  for collection, kind in _COLLECTIONS:
    state = nnx.state(model, kind)
    given = partition.flatten(variables.get(collection, {}))
    have = {_path(p): v for p, v in nnx.to_flat_state(state)}
    if set(given) != set(have):
      raise ValueError(f"{collection}: missing {sorted(set(have) - set(given))[:10]}, "
                       f"unexpected {sorted(set(given) - set(have))[:10]}.")
    wrong = [p for p in have if tuple(have[p].shape) != tuple(jnp.shape(given[p]))]
    if wrong:
      raise ValueError(f"{collection}: shape mismatch at {wrong[:10]}.")
    nnx.replace_by_pure_dict(state, partition.unflatten({p: jnp.asarray(x) for p, x in given.items()}))
    nnx.update(model, state)


def from_linen(linen_model, variables: Mapping[str, Any], *, image_size: int = 224, seed: int = 0) -> Classifier:
  """``linen_model`` (a ``models.create`` classifier) with ``variables`` as an NNX ``Classifier``.

  ``nnx.bridge.lazy_init`` runs under ``nnx.eval_shape`` (shapes only: no random init is
  computed) to build the module's structure, which ``variables`` then fill. ``image_size`` is
  the size of that shape-only call (VGG's fully-connected top fixes it); ``seed`` seeds the
  ``dropout`` stream.
  """
  x = jnp.zeros((1, image_size, image_size, 3), jnp.uint8)
  make = lambda: Classifier(linen_model, rngs=nnx.Rngs(params=seed, dropout=seed + 1))
  abstract = nnx.eval_shape(lambda: bridge.lazy_init(make(), x))
  graphdef, _, state = nnx.split(abstract, nnx.RngState, ...)
  model = nnx.merge(graphdef, nnx.state(make(), nnx.RngState), state)
  load_linen_variables(model, variables)
  return model


def create(name: str, num_classes: int, *, pretrained: bool = True, source: str | None = None,
           path: str | None = None, dont_load=("head/.*",), bn: "str | optim.ParamGroups" = "batch",
           image_size: int = 224, seed: int = 0, **model_kwargs) -> Classifier:
  """A registry model (``models.names()``) as an NNX module, with its pretrained weights.

  Args:
    name: a key of ``models.REGISTRY``.
    num_classes: size of the new head; 0 means no head.
    pretrained: load ``weights.load_pretrained(name, path=path, source=source)``; False keeps the
      random init of ``seed``.
    source, path: which weights (``weights.SOURCES``; a local file); also the preprocessing.
    dont_load: regexes of paths that keep their initial values (the new head).
    bn: how BatchNorm layers run in training (``set_bn``): ``"batch"``, ``"running"``,
      ``"train_affine"``, or per layer from ``ParamGroups``.
    image_size: the input size the structure is built at (any size runs later, except VGG's
      fully-connected top).
    seed: the random init (head, and everything with ``pretrained=False``) and dropout stream.
    model_kwargs: more ``models.create`` arguments (``dtype``, ``dropout_rate``, ``layer_impl``...).
  """
  linen_model = models.create(name, num_classes, source=source, **model_kwargs)
  loaded = weights.load_pretrained(name, path=path, source=source) if pretrained else {}
  variables = weights.init_variables(linen_model, image_size, jax.random.key(seed), loaded, dont_load=dont_load)
  model = from_linen(linen_model, variables, image_size=image_size, seed=seed)
  set_bn(model, bn)
  return model


def bn_layers(model: nnx.Module) -> frozenset[str]:
  """Paths of the layers holding BatchNorm statistics."""
  return frozenset(_path(p).rsplit("/", 1)[0] for p, _ in nnx.to_flat_state(nnx.state(model, nnx.BatchStat)))


def set_bn(model: Classifier, bn: "str | optim.ParamGroups") -> None:
  """Sets how ``model``'s BatchNorm layers run with ``train=True``, in place.

  ``"batch"``: batch statistics, running ones updated; ``"running"`` or ``"train_affine"``:
  always the running statistics, never updated (which affine parameters train is the
  optimizer's business); ``ParamGroups``: each layer as its group says (``bn_mode``), as the
  Linen trainer freezes them (``Plan.frozen_bn``).
  """
  layers = bn_layers(model)
  if isinstance(bn, optim.ParamGroups):
    frozen = frozenset(layer for layer in layers if bn.bn_mode(layer) != "batch")
  elif bn in BN_MODES:
    frozen = layers if bn != "batch" else frozenset()
  else:
    raise ValueError(f"bn must be one of {BN_MODES} or a ParamGroups, got {bn!r}.")
  linen_model = model.to_nnx__module
  model.to_nnx__module = linen_model.clone(backbone=linen_model.backbone.clone(frozen_bn=frozen))


def param_groups(model: nnx.Module, cfg: Mapping[str, Any]) -> optim.ParamGroups:
  """``cfg`` (like ``config.param_groups``: ``rules`` or ``preset``, per-label settings) on
  ``model``'s parameter paths: ``optim.ParamGroups.from_config``, the Linen trainer's own."""
  variables = linen_variables(model)
  return optim.ParamGroups.from_config(variables["params"], cfg, batch_stats=variables.get("batch_stats"))


def inspect(model: nnx.Module, groups: optim.ParamGroups) -> list[inspect_groups.Row]:
  """The parameter-group table of ``model`` under ``groups`` (path, shape, size, group, trainable,
  effective lr multiplier, BatchNorm mode; input to head): ``inspect_groups.rows`` on
  ``linen_variables(model)``, so the rows (and ``inspect_groups.format_table`` /
  ``to_json`` of them) are the Linen inspector's for the same model and rules."""
  plan = Plan(starts=(0,), groups=(groups,), bn_layers=bn_layers(model))
  return inspect_groups.rows(linen_variables(model)["params"], plan)


def labels(model: nnx.Module, rules: "optim.ParamGroups | partition.Rules") -> nnx.State:
  """The label of every parameter, as a tree shaped like ``nnx.state(model, nnx.Param)``'s arrays:
  the ``param_labels`` of an ``optax.multi_transform`` used in ``nnx.Optimizer(model, tx,
  wrt=nnx.Param)``. ``rules``: ``(regex, label)`` pairs (``partition.label_paths``) or groups."""
  state = nnx.as_pure(nnx.state(model, nnx.Param))
  paths = [_path(p) for p, _ in jax.tree_util.tree_leaves_with_path(state)]
  by_path = rules.labels if isinstance(rules, optim.ParamGroups) else partition.label_paths(paths, rules)
  return jax.tree_util.tree_map_with_path(lambda p, _: by_path[_path(p)], state)


@dataclasses.dataclass(frozen=True)
class Trainable:
  """An NNX filter: the ``nnx.Param`` variables whose path is in ``paths`` (hashable, so a
  ``train_step`` bound to it compiles once)."""

  paths: frozenset[str]

  def __call__(self, path, value) -> bool:
    return isinstance(value, nnx.Param) and _path(path) in self.paths


def trainable(groups: optim.ParamGroups) -> Trainable:
  """The filter of ``groups``' trainable parameters (``nnx.DiffState``, ``nnx.state``)."""
  return Trainable(frozenset(p for p in groups.labels if groups.trainable(p)))


def _on_linen_trees(tx: optax.GradientTransformation) -> optax.GradientTransformation:
  """``tx`` (built on Linen's nested-dict params, like ``make_optimizer``'s masks and labels) on
  the ``nnx.State`` trees ``nnx.Optimizer`` passes; its state stays the Linen one."""
  as_dict = lambda tree: partition.unflatten(
      {_path(p): x for p, x in jax.tree_util.tree_leaves_with_path(tree)})

  def update(updates, state, params=None):
    new, state = tx.update(as_dict(updates), state, None if params is None else as_dict(params))
    flat = partition.flatten(new)
    return jax.tree_util.tree_map_with_path(lambda p, _: flat[_path(p)], updates), state

  return optax.GradientTransformation(lambda params: tx.init(as_dict(params)), update)


def optimizer(model: nnx.Module, cfg: Mapping[str, Any], groups: optim.ParamGroups,
              total_steps: int) -> nnx.Optimizer:
  """``nnx.Optimizer(model, make_optimizer(cfg, groups, total_steps), wrt=nnx.Param)``: the
  Linen trainer's optimizer (``config.optim``), frozen groups ``set_to_zero`` without state."""
  tx = _on_linen_trees(optim.make_optimizer(cfg, groups, total_steps))
  return nnx.Optimizer(model, tx, wrt=nnx.Param)


def value_and_grad(objective: Callable[[nnx.Module], Any], model: nnx.Module, filter_: Trainable):
  """``nnx.value_and_grad`` of ``objective(model) -> (loss, aux)`` w.r.t. the parameters of
  ``filter_`` only: the others get zero gradients that no backward pass computed, in a tree of
  every ``nnx.Param`` (what ``nnx.Optimizer(..., wrt=nnx.Param).update`` takes)."""
  grad_fn = nnx.value_and_grad(objective, argnums=nnx.DiffState(0, filter_), has_aux=True)
  value, grads = grad_fn(model)
  full = jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param))
  nnx.replace_by_pure_dict(full, nnx.to_pure_dict(grads))
  return value, full


def train_step(model: Classifier, opt: nnx.Optimizer, batch: Mapping[str, jax.Array], *,
               trainable: Trainable, loss_fn=steps.cross_entropy) -> dict[str, jax.Array]:
  """One optimizer step on ``batch = {'image', 'label'}``, in place; returns the metrics.

  Bind ``trainable`` (and ``loss_fn``) with ``functools.partial`` and ``nnx.jit`` it.
  """

  def objective(model):
    logits, _ = model(batch["image"], train=True)
    return loss_fn(logits, batch["label"]), logits

  (loss, logits), grads = value_and_grad(objective, model, trainable)
  opt.update(model, grads)
  return {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"])}


def eval_step(model: Classifier, batch: Mapping[str, jax.Array], *, top_k: int = 5) -> dict[str, jax.Array]:
  """``steps.eval_step`` on an NNX model: predictions, top-k hits, losses and logits."""
  logits, _ = model(batch["image"])
  return steps.eval_outputs(logits, batch["label"], top_k=top_k)


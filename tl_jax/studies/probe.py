"""tl_jax's linear probe: the protocol of Kornblith, Shlens & Le (2019), "Do Better ImageNet Models Transfer Better?".

Multinomial logistic regression on fixed (cached, pooled) features, with an
L2 penalty on the weights chosen on the validation split from a log-spaced
grid, then refit on train+val with that penalty and scored once on test.

The objective for penalty ``l2`` (per training image) is::

  mean_i CE(W x_i + b, y_i) + l2 / 2 * ||W||^2      (the bias is not penalised)

which is scikit-learn's ``LogisticRegression(C=1 / (l2 * n))`` objective
(``sklearn_protocol`` runs that as the reference). Features are standardised
(mean and std of the set being fit: train for the selection, train+val for the
refit) unless ``standardize=False``; that is our choice, stated, not a detail
the paper fixes. The whole grid is one jitted program: full-batch L-BFGS
(``optax.lbfgs``, zoom line search) inside a ``lax.while_loop``, ``vmap``-ed
over the penalties, each run until the gradient's largest entry is below
``tol`` or ``max_iter`` steps.

Selection: the highest validation accuracy; ties go to the lower validation
cross-entropy (both implementations use the same rule).
"""

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

Split = tuple[np.ndarray, np.ndarray]  # (features (N, D), labels (N,))


def l2_grid(lo: float = 1e-6, hi: float = 1e2, num: int = 17) -> np.ndarray:
  """``num`` log-spaced penalties from ``lo`` to ``hi``."""
  if not 0 < lo < hi or num < 1:
    raise ValueError(f"l2_grid needs 0 < lo < hi and num >= 1; got lo={lo}, hi={hi}, num={num}.")
  return np.logspace(np.log10(lo), np.log10(hi), num)


def _loss(params, x, y, weight, l2):
  w, b = params
  ce = optax.softmax_cross_entropy_with_integer_labels(x @ w + b, y)
  return jnp.sum(weight * ce) / jnp.sum(weight) + 0.5 * l2 * jnp.sum(w * w)


def _fit_one(x, y, weight, l2, *, num_classes, tol, max_iter):
  f = functools.partial(_loss, x=x, y=y, weight=weight, l2=l2)
  opt = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(f)
  params = (jnp.zeros((x.shape[1], num_classes), x.dtype), jnp.zeros((num_classes,), x.dtype))

  def grad_max(g):
    return jnp.maximum(jnp.abs(g[0]).max(), jnp.abs(g[1]).max())

  def cond(carry):
    _, _, it, gmax = carry
    return (it < max_iter) & (gmax > tol)

  def body(carry):
    params, state, it, _ = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)
    params = optax.apply_updates(params, updates)
    # The gradient at the new point, as the line search left it in the state.
    return params, state, it + 1, grad_max(optax.tree.get(state, "grad"))

  carry = (params, opt.init(params), jnp.zeros((), jnp.int32), jnp.asarray(jnp.inf, x.dtype))
  params, _, it, gmax = jax.lax.while_loop(cond, body, carry)
  return params, it, gmax


@functools.partial(jax.jit, static_argnames=("num_classes", "max_iter"))
def fit_grid(x, y, l2s, weight=None, *, num_classes: int, tol: float = 1e-4, max_iter: int = 500):
  """Fits one probe per penalty in ``l2s``, all in one vectorised program.

  Args:
    x: (N, D) float32 features (standardised already, if wanted).
    y: (N,) int labels in ``[0, num_classes)``.
    l2s: (G,) penalties per training image.
    weight: (N,) per-image weights of the mean loss (default 1); a 0 leaves
      a row out, so fits of different sets share one compiled shape.
    num_classes: the number of classes.
    tol: stop when every gradient entry is below this in absolute value.
    max_iter: at most this many L-BFGS steps.

  Returns:
    ``((W (G, D, C), b (G, C)), iterations (G,), final max |gradient| (G,))``.
  """
  weight = jnp.ones(x.shape[:1], x.dtype) if weight is None else weight.astype(x.dtype)
  fit = functools.partial(_fit_one, num_classes=num_classes, tol=tol, max_iter=max_iter)
  return jax.vmap(fit, in_axes=(None, None, None, 0))(x, y, weight, l2s)


@jax.jit
def _scores(params, x, y):
  """Accuracy and mean cross-entropy of each fitted probe on ``(x, y)``."""
  w, b = params
  logits = jnp.einsum("nd,gdc->gnc", x, w) + b[:, None, :]
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, y[None]).mean(-1)
  return (logits.argmax(-1) == y[None]).mean(-1), ce


def standardizer(x: np.ndarray, standardize: bool = True):
  """``x -> (x - mean) / std`` with ``x``'s statistics (identity if not ``standardize``)."""
  if not standardize:
    return lambda z: np.asarray(z, np.float32)
  mean, std = x.mean(0), x.std(0)
  std = np.where(std > 1e-8 * max(float(std.max()), 1e-30), std, 1.0)  # constant features stay 0
  return lambda z: ((np.asarray(z, np.float64) - mean) / std).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class ProbeResult:
  """One run of the protocol."""

  l2: float  # the selected penalty (per training image)
  test_accuracy: float
  val_accuracy: np.ndarray  # per grid value (fit on train)
  grid: np.ndarray
  wall_s: float  # selection + refit + test, features given
  iterations: np.ndarray  # per grid value, then the refit's as the last entry
  converged: bool  # every fit reached the tolerance
  test_correct: np.ndarray | None = None  # per test image: the refit probe predicted it right


def _select(val_acc: np.ndarray, val_ce: np.ndarray) -> int:
  best = np.flatnonzero(val_acc == val_acc.max())
  return int(best[np.argmin(val_ce[best])])


def _check(train: Split, val: Split, test: Split) -> int:
  for name, (x, y) in (("train", train), ("val", val), ("test", test)):
    if x.ndim != 2 or len(x) != len(y) or not len(y):
      raise ValueError(f"probe: {name} needs (N, D) features and N labels, N > 0; "
                       f"got {x.shape} and {np.shape(y)}.")
  if not len(train[0][0]) == len(val[0][0]) == len(test[0][0]):
    raise ValueError(f"probe: feature sizes differ: train {train[0].shape[1]}, val {val[0].shape[1]}, "
                     f"test {test[0].shape[1]}.")
  return int(max(train[1].max(), val[1].max(), test[1].max())) + 1


def _bucket(d: int) -> int:
  """Feature widths padded to few sizes (zero columns: their weights stay 0), so few compilations."""
  return d if d > 512 else max(64, 1 << (d - 1).bit_length())


def protocol(train: Split, val: Split, test: Split, grid: np.ndarray, *, standardize: bool = True,
             tol: float = 1e-4, max_iter: int = 500, pad_rows: int = 0) -> ProbeResult:
  """Selects the penalty on ``val``, refits on train+val, returns the test accuracy (tl_jax's probe).

  Both fits run on the rows of train+val (the selection gives val weight 0),
  padded with weight-0 rows to ``pad_rows`` if that is more: runs on training
  subsets of different sizes then share one compiled program (compiling costs
  more than the fit at these sizes).
  """
  num_classes = _check(train, val, test)
  t0 = time.time()
  grid = np.asarray(grid, np.float32)
  x_all, y_all = np.concatenate([train[0], val[0]]), np.concatenate([train[1], val[1]]).astype(np.int32)
  cols = lambda z: np.pad(z, ((0, 0), (0, _bucket(z.shape[1]) - z.shape[1])))
  extra = max(0, pad_rows - len(y_all))
  rows = lambda z: np.pad(z, ((0, extra),) + ((0, 0),) * (z.ndim - 1))
  in_train = rows((np.arange(len(y_all)) < len(train[1])).astype(np.float32))
  is_real, y_all = rows(np.ones(len(y_all), np.float32)), rows(y_all)
  kw = dict(num_classes=num_classes, tol=tol, max_iter=max_iter)
  scale = standardizer(train[0], standardize)
  params, it, gmax = fit_grid(rows(cols(scale(x_all))), y_all, grid, in_train, **kw)
  val_acc, val_ce = map(np.asarray, _scores(params, cols(scale(val[0])), val[1].astype(np.int32)))
  best = _select(val_acc, val_ce)
  scale = standardizer(x_all, standardize)
  params2, it2, gmax2 = fit_grid(rows(cols(scale(x_all))), y_all, grid[best:best + 1], is_real, **kw)
  w, b = (np.asarray(p)[0] for p in params2)
  correct = (cols(scale(test[0])) @ w + b).argmax(-1) == test[1]
  test_acc = float(correct.mean())
  gmax = np.append(np.asarray(gmax), np.asarray(gmax2))
  return ProbeResult(float(grid[best]), test_acc, val_acc, grid, time.time() - t0,
                     np.append(np.asarray(it), np.asarray(it2)), bool((gmax <= tol).all()), correct)


def sklearn_protocol(train: Split, val: Split, test: Split, grid: np.ndarray, *, standardize: bool = True,
                     tol: float = 1e-4, max_iter: int = 500) -> ProbeResult:
  """The same protocol with scikit-learn's L-BFGS ``LogisticRegression``, one fit per penalty (the reference)."""
  import warnings

  from sklearn.exceptions import ConvergenceWarning
  from sklearn.linear_model import LogisticRegression  # the reference only

  _check(train, val, test)
  t0 = time.time()
  converged = True

  def fit(x, y, l2):
    nonlocal converged
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", ConvergenceWarning)
      clf = LogisticRegression(C=1.0 / (float(l2) * len(y)), solver="lbfgs", tol=tol,
                               max_iter=max_iter).fit(x, y)
    converged &= bool(clf.n_iter_.max() < max_iter)
    return clf

  scale = standardizer(train[0], standardize)
  xtr, xval = scale(train[0]), scale(val[0])
  fits = [fit(xtr, train[1], l2) for l2 in grid]
  val_acc = np.array([(c.predict(xval) == val[1]).mean() for c in fits])
  val_ce = np.array([-np.log(np.maximum(c.predict_proba(xval)[np.arange(len(val[1])), val[1]], 1e-30)).mean()
                     for c in fits])
  best = _select(val_acc, val_ce)
  x_all, y_all = np.concatenate([train[0], val[0]]), np.concatenate([train[1], val[1]])
  scale = standardizer(x_all, standardize)
  final = fit(scale(x_all), y_all, grid[best])
  test_acc = float((final.predict(scale(test[0])) == test[1]).mean())
  its = np.array([int(c.n_iter_.max()) for c in fits + [final]])
  return ProbeResult(float(grid[best]), test_acc, val_acc, np.asarray(grid), time.time() - t0, its, converged)

"""Online estimate of the gradient noise scale (McCandlish et al. 2018, "An Empirical
Model of Large-Batch Training", arXiv:1812.06162, Appendix A).

The simple noise scale B_simple = tr(Sigma) / |G|^2 (Sigma: per-example gradient
covariance, G: true gradient) is the batch size above which larger batches stop paying
off. The mean gradient of a batch of B examples has E|G_B|^2 = |G|^2 + tr(Sigma) / B, so
squared norms at two batch sizes B_small < B_big give unbiased estimates

  |G|^2   ~  (B_big |G_Bbig|^2 - B_small |G_Bsmall|^2) / (B_big - B_small)
  tr(S)   ~  (|G_Bsmall|^2 - |G_Bbig|^2) / (1 / B_small - 1 / B_big)

Each is noisy (|G|^2 may even come out negative), so the ratio is taken of exponential
moving averages of numerator and denominator separately: B_simple = EMA(S) / EMA(|G|^2).

How the trainer feeds it (gradient accumulation over k micro-batches of b examples):
  * B_small = b, |G_Bsmall|^2 = the squared norm of ONE micro-batch's mean gradient
    (better: the mean over the k micro-batches of their squared norms: same expectation,
    less noise). The micro-batch gradient must be that micro-batch's own *mean*
    gradient: if the trainer scales each micro-batch loss by 1/k (or by the token count
    of all k), multiply the gradient back (norm squared by k^2) first.
  * B_big = k * b, |G_Bbig|^2 = the squared norm of the accumulated mean gradient.
  * Norms are taken before clipping. Without accumulation, two replicas' gradients (or
    the two halves of a batch) serve as the small batch the same way.
  * `squared_norm(grads)` below computes a squared norm in-graph (a scalar tensor): return
    it from the train step with the other statistics, then call `update` in Python with
    floats (the estimator holds Python floats: no variables, no strategy scope).
  * B is in whatever unit the loss averages over: the trainer's loss is a mean over
    target tokens, so B counted in tokens gives B_simple in tokens.
"""

import math
from typing import Iterable, Optional

import tensorflow as tf


def squared_norm(grads: Iterable) -> tf.Tensor:
  """Sum of squared entries of a list of gradients (None entries and IndexedSlices OK)."""
  total = tf.constant(0.0, tf.float32)
  for g in grads:
    if g is None:
      continue
    if isinstance(g, tf.IndexedSlices):
      g = tf.convert_to_tensor(g)
    total += tf.reduce_sum(tf.square(tf.cast(g, tf.float32)))
  return total


def estimates(sq_norm_small, b_small, sq_norm_big, b_big):
  """One-shot unbiased estimates (|G|^2, tr(Sigma)) from squared norms at two batch sizes
  (Python floats, numpy or TF values)."""
  if not b_big > b_small > 0:
    raise ValueError(f"need 0 < b_small < b_big, got b_small={b_small}, b_big={b_big}")
  g2 = (b_big * sq_norm_big - b_small * sq_norm_small) / (b_big - b_small)
  trace = (sq_norm_small - sq_norm_big) / (1.0 / b_small - 1.0 / b_big)
  return g2, trace


class NoiseScale:
  """Exponential moving averages of the |G|^2 and tr(Sigma) estimates; B_simple is their
  ratio. `decay` is the EMA's weight on the past (0.99: about the last 100 updates);
  averages are bias-corrected as in Adam so early values are not pulled towards 0."""

  def __init__(self, decay: float = 0.99):
    if not 0.0 <= decay < 1.0:
      raise ValueError(f"decay must be in [0, 1), got {decay}")
    self.decay = decay
    self.count = 0
    self._g2 = 0.0
    self._trace = 0.0

  def update(self, sq_norm_small, b_small, sq_norm_big, b_big) -> Optional[float]:
    """Feeds one pair of squared gradient norms; returns the current B_simple."""
    g2, trace = estimates(float(sq_norm_small), float(b_small), float(sq_norm_big),
                          float(b_big))
    if not (math.isfinite(g2) and math.isfinite(trace)):
      return self.b_simple  # skip a non-finite step (e.g. an overflowed gradient)
    self.count += 1
    self._g2 = self.decay * self._g2 + (1.0 - self.decay) * g2
    self._trace = self.decay * self._trace + (1.0 - self.decay) * trace
    return self.b_simple

  def _debias(self, x):
    if self.count == 0:
      return float("nan")
    return x / (1.0 - self.decay ** self.count)

  @property
  def g2(self) -> float:
    """Smoothed estimate of |G|^2, the squared norm of the true gradient."""
    return self._debias(self._g2)

  @property
  def trace_sigma(self) -> float:
    """Smoothed estimate of tr(Sigma), the per-example gradient variance summed."""
    return self._debias(self._trace)

  @property
  def b_simple(self) -> float:
    """tr(Sigma) / |G|^2 (nan before the first update or while |G|^2 <= 0)."""
    g2 = self.g2
    if not g2 > 0:
      return float("nan")
    return self.trace_sigma / g2

  def state(self) -> dict:
    """For logging and resuming (JSON-able): smoothed values plus the raw EMAs."""
    return {"count": self.count, "g2": self.g2, "trace_sigma": self.trace_sigma,
            "b_simple": self.b_simple, "decay": self.decay, "ema_g2": self._g2,
            "ema_trace": self._trace}

  @classmethod
  def from_state(cls, state: dict) -> "NoiseScale":
    est = cls(state["decay"])
    est.count, est._g2, est._trace = state["count"], state["ema_g2"], state["ema_trace"]
    return est

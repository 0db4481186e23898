"""Magnitude pruning with the gradual schedule of Zhu & Gupta 2017 ("To prune, or not to
prune", arXiv:1710.01878), unstructured or in blocks.

Schedule: from `begin_step` (t0) to `end_step`, every `frequency` (dt) steps, each
kernel's sparsity target is

  s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (end_step - t0))^3

(s_i = initial_sparsity, s_f = target_sparsity; n dt = end_step - t0), and its mask is
recomputed to zero the s_t fraction of smallest-magnitude entries, or of blocks of
`block_shape` (over a kernel's last two dimensions: [in, out], e.g. (1, 4) or (4, 4)) by
their L2 or L1 norm. Already-pruned weights are zero, so masks only grow. Blocks at the
edge of a kernel whose dims are not multiples of the block are smaller (and so rank low).

Masks are non-trainable tf.Variables owned by the `Pruner` (a tf.Module), so
`tf.train.Checkpoint(..., pruner=pruner)` saves and restores them.

Trainer usage (see `Pruner`):
    pruner = pruning.maybe_pruner(model.backbone, cfg)  # after variables exist,
    checkpoint.pruner = pruner                          # before restore; if not None
    # each step, after optimizer.apply_gradients (cross-replica context, e.g. in the
    # train loop right after strategy.run(step_fn)):
    pruner.update(step)   # recompute masks when the schedule says so (tf.cond inside)
    pruner.apply()        # weights *= masks
"""

import dataclasses
from typing import Dict, List, Optional

import gin
import keras
import tensorflow as tf

from onemodel import errors


@dataclasses.dataclass(frozen=True)
class PruningConfig:
  """target_sparsity 0 (default) switches pruning off. A plain value: gin binds it under
  the same name (`PruningConfig.target_sparsity`) and `from_gin()` reads that at the
  edges only."""
  target_sparsity: float = 0.0
  begin_step: int = 0
  end_step: int = 1000
  frequency: int = 100
  block_shape: tuple = (1, 1)      # over a kernel's last two dims ([in, out])
  initial_sparsity: float = 0.0
  block_norm: str = "l2"           # 'l2' or 'l1' (ranking of blocks)

  def __post_init__(self):
    errors.check_field_types(self, "PruningConfig")
    object.__setattr__(self, "block_shape", tuple(self.block_shape))  # gin gives lists
    if self.target_sparsity and \
        not 0.0 <= self.initial_sparsity <= self.target_sparsity < 1.0:
      raise ValueError("need 0 <= initial_sparsity <= target_sparsity < 1, got "
                       f"{self.initial_sparsity}, {self.target_sparsity}")
    if self.end_step <= self.begin_step or self.frequency < 1:
      raise ValueError(f"need begin_step < end_step and frequency >= 1, got "
                       f"{self.begin_step}, {self.end_step}, {self.frequency}")
    if len(self.block_shape) != 2 or min(self.block_shape) < 1:
      raise ValueError(f"block_shape {self.block_shape}: two positive ints")
    if self.block_norm not in ("l1", "l2"):
      raise ValueError(f"block_norm {self.block_norm!r}: use 'l1' or 'l2'")


def sparsity_at(step, cfg: PruningConfig):
  """Zhu & Gupta's target at `step` (0 before begin_step, s_f after end_step); works on
  Python numbers and tensors."""
  step = tf.cast(step, tf.float32)
  t0, t1 = float(cfg.begin_step), float(cfg.end_step)
  frac = tf.clip_by_value((step - t0) / (t1 - t0), 0.0, 1.0)
  s = cfg.target_sparsity + (cfg.initial_sparsity - cfg.target_sparsity) * (1.0 - frac) ** 3
  return tf.where(step < t0, 0.0, s)


def magnitude_mask(weight, sparsity, block_shape=(1, 1), block_norm="l2") -> tf.Tensor:
  """A 0/1 mask of `weight`'s shape zeroing the floor(sparsity x #blocks) blocks of lowest
  norm (ties broken by position). Blocks tile the last two dims; rank >= 2."""
  w = tf.convert_to_tensor(weight)
  shape = w.shape.as_list()
  if len(shape) < 2:
    raise ValueError(f"magnitude_mask needs a rank >= 2 kernel, got shape {shape}")
  br, bc = block_shape
  rows, cols = shape[-2], shape[-1]
  lead = shape[:-2]
  pr, pc = (-rows) % br, (-cols) % bc
  a = tf.abs(w) if block_norm == "l1" else tf.square(w)
  if (br, bc) != (1, 1):
    a = tf.pad(a, [[0, 0]] * len(lead) + [[0, pr], [0, pc]])
    nr, nc = (rows + pr) // br, (cols + pc) // bc
    a = tf.reshape(a, lead + [nr, br, nc, bc])
    a = tf.reduce_sum(a, axis=[-3, -1])                    # [..., nr, nc]: block norms
  grid = a.shape.as_list()
  scores = tf.reshape(a, [-1])
  n = scores.shape[0]
  k = tf.cast(tf.floor(tf.cast(sparsity, tf.float32) * n), tf.int32)
  order = tf.argsort(scores, stable=True)
  ranks = tf.scatter_nd(order[:, None], tf.range(n), [n])
  mask = tf.reshape(tf.cast(ranks >= k, w.dtype), grid)
  if (br, bc) != (1, 1):
    mask = tf.repeat(tf.repeat(mask, br, axis=-2), bc, axis=-1)
    mask = mask[..., :rows, :cols]
  return mask


def prunable_weights(layer) -> List:
  """Kernels of the built Dense sublayers of `layer` (not routers) plus any sublayer's
  `prunable_weights` (MoE experts). Embeddings, norms and biases are not included;
  Dense layers never called (unbuilt, e.g. cross-attention of a language model) neither."""
  found, seen = [], set()
  for sub in layer._flatten_layers(include_self=True, recursive=True):
    if isinstance(sub, keras.layers.Dense):
      if not sub.built or "router" in sub.name:
        continue
      candidates = [sub.kernel]
    else:
      candidates = list(getattr(sub, "prunable_weights", []) or [])
    for v in candidates:
      if id(v) not in seen:
        seen.add(id(v))
        found.append(v)
  return found


class _Untracked:
  """Holds the model's variables without making them checkpoint dependencies of the
  Pruner (they belong to the model's checkpoint)."""

  def __init__(self, items):
    self.items = items


def _key(v) -> str:
  return getattr(v, "path", v.name).replace("/", ".").replace(":", "_")


class Pruner(tf.Module):
  """One mask variable per prunable kernel of `layer` (or of the given `weights`).

  Create it after the model's variables exist (one forward pass) and inside the
  strategy's scope; attach it to the checkpoint before restoring. Then, every step after
  the optimizer update: `update(step)` (cheap unless the schedule fires) and `apply()`.
  Both work eagerly and inside tf.function."""

  def __init__(self, layer=None, cfg: Optional[PruningConfig] = None, weights=None,
               name="pruner"):
    super().__init__(name=name)
    self.cfg = cfg or PruningConfig()
    weights = list(weights) if weights is not None else prunable_weights(layer)
    if not weights:
      raise ValueError("nothing to prune: no built Dense kernels found (run one forward "
                       "pass before creating the Pruner)")
    self._weights = _Untracked(weights)
    self.masks = {}
    keys, labels = [], []
    for v in weights:
      key, n, label = _key(v), 1, getattr(v, "path", v.name)
      while key in self.masks:  # two variables with one path: keep both masks apart
        key, label, n = f"{_key(v)}_{n}", f"{getattr(v, 'path', v.name)}_{n}", n + 1
      keys.append(key)
      labels.append(label)
      self.masks[key] = tf.Variable(
          tf.ones(v.shape, v.dtype), trainable=False, name="mask_" + key,
          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self._keys, self._labels = _Untracked(keys), _Untracked(labels)

  def _pairs(self):
    return [(v, self.masks[k]) for v, k in zip(self._weights.items, self._keys.items)]

  def should_update(self, step):
    """True at begin_step + j x frequency up to end_step, and at end_step."""
    c = self.cfg
    step = tf.cast(step, tf.int64)
    on_grid = tf.equal((step - c.begin_step) % c.frequency, 0) | tf.equal(step, c.end_step)
    return (step >= c.begin_step) & (step <= c.end_step) & on_grid

  def recompute_masks(self, sparsity):
    """Masks for `sparsity` from the current (masked) weights, whatever the schedule."""
    c = self.cfg
    for v, m in self._pairs():
      w = tf.convert_to_tensor(v) * tf.convert_to_tensor(m)
      m.assign(magnitude_mask(w, sparsity, c.block_shape, c.block_norm))

  def update(self, step):
    """Recomputes the masks if the schedule fires at `step`; -> bool tensor (fired)."""
    if self.cfg.target_sparsity <= 0:
      return tf.constant(False)
    fire = self.should_update(step)

    def _do():
      self.recompute_masks(sparsity_at(step, self.cfg))
      return tf.constant(True)

    return tf.cond(fire, _do, lambda: tf.constant(False))

  def apply(self):
    """weights *= masks (call after every optimizer step)."""
    for v, m in self._pairs():
      v.assign(tf.convert_to_tensor(v) * tf.convert_to_tensor(m))

  def sparsity_report(self) -> Dict[str, float]:
    """Achieved sparsity (fraction of masked entries) per kernel path, plus 'total'
    (over all prunable entries). Eager only (Python floats)."""
    report, zeros, size = {}, 0.0, 0
    for (_, m), label in zip(self._pairs(), self._labels.items):
      z = float(tf.reduce_sum(1.0 - tf.cast(m, tf.float32)))
      n = int(tf.size(m))
      report[label] = z / n
      zeros, size = zeros + z, size + n
    report["total"] = zeros / max(size, 1)
    return report


_GIN = gin.external_configurable(PruningConfig, "PruningConfig", module="onemodel.pruning")


def from_gin() -> PruningConfig:
  """The pruning settings as gin binds them (for the edges only)."""
  return _GIN()


def maybe_pruner(layer, cfg: Optional[PruningConfig] = None) -> Optional[Pruner]:
  """A Pruner for `layer` if cfg.target_sparsity > 0, else None."""
  cfg = cfg or PruningConfig()
  return Pruner(layer, cfg) if cfg.target_sparsity > 0 else None

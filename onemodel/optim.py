"""Keras optimizers with warmup + decay schedules, built from plain config values.

`OptimizerConfig` and `ScheduleConfig` are frozen dataclasses: library code builds from
the values it is given. gin binds them under their old names (`optimizer.name`,
`learning_rate_schedule.learning_rate`) and `from_gin()` reads those bindings at the
edges only (the command line, trainer construction), as t5x keeps gin out of its core.

Large-batch training:
- optimizers 'lamb' (keras.optimizers.Lamb, You et al. 2019, arXiv:1904.00962),
  'lars' (`Lars` below, You et al. 2017, arXiv:1708.03888) and 'adafactor'
  (keras.optimizers.Adafactor, Shazeer & Stern 2018), next to 'adamw', 'adam', 'sgd';
- the learning-rate scaling rule (`scaled_learning_rate`): `learning_rate` is then the
  *base* rate tuned at `reference_batch` examples and is scaled to the effective batch
  (per-step batch x gradient-accumulation steps), linearly (Goyal et al. 2017,
  arXiv:1706.02677) or by the square root (Krizhevsky 2014; Hoffer et al. 2017);
- gradual warmup (Goyal et al. 2017): `warmup_start='base'` ramps from the unscaled base
  rate to the scaled peak instead of from 0.

Example (gin): a rate of 1e-3 tuned at batch 256, run at 32 x 8 accumulation steps:
  learning_rate_schedule.learning_rate = 1e-3
  learning_rate_schedule.scale_rule = 'linear'
  learning_rate_schedule.reference_batch = 256
and the trainer passes `effective_batch=32 * 8` to `make_optimizer(...)`.
"""

import dataclasses
import math
from typing import Optional, Tuple

import gin
import keras
import tensorflow as tf

from onemodel import errors
from onemodel.errors import UserError


@keras.saving.register_keras_serializable("onemodel")
class WarmupRsqrt(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warmup, then decay with 1/sqrt(step) (Vaswani et al. 2017, eq. 3 shape)."""

  def __init__(self, peak, warmup_steps, start=0.0):
    self.peak, self.warmup_steps = peak, max(int(warmup_steps), 1)
    self.start = start  # rate at step 0 (gradual warmup from the base rate; 0: from 0)

  def __call__(self, step):
    step = tf.cast(step, tf.float32) + 1.0
    w = float(self.warmup_steps)
    ramp = self.start + (self.peak - self.start) * tf.minimum(step / w, 1.0)
    return tf.where(step < w, ramp, self.peak * tf.math.rsqrt(step / w))

  def get_config(self):
    return {"peak": self.peak, "warmup_steps": self.warmup_steps, "start": self.start}


SCALE_RULES = ("none", "linear", "sqrt")


def scaled_learning_rate(base_lr: float, effective_batch: int, reference_batch: int,
                         rule: str = "linear") -> float:
  """The learning rate for `effective_batch` examples per update, given `base_lr` tuned
  at `reference_batch` examples per update.

  rule 'linear': base_lr x effective/reference (Goyal et al. 2017: SGD/momentum);
  'sqrt': base_lr x sqrt(effective/reference) (keeps the update's noise variance; often
  used with Adam/LAMB); 'none': base_lr. The effective batch is what one optimizer update
  averages over: per-step global batch x gradient-accumulation steps."""
  if rule not in SCALE_RULES:
    raise UserError(f"learning-rate scale rule {rule!r}: use one of {SCALE_RULES}")
  if rule == "none":
    return float(base_lr)
  if not effective_batch or effective_batch <= 0 or not reference_batch \
      or reference_batch <= 0:
    raise UserError(f"learning-rate scale rule {rule!r} needs a positive effective batch "
                    f"and reference batch (got {effective_batch} and {reference_batch}): "
                    "set learning_rate_schedule.reference_batch")
  ratio = float(effective_batch) / float(reference_batch)
  return float(base_lr) * (ratio if rule == "linear" else math.sqrt(ratio))


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
  """The learning-rate schedule (gin: `learning_rate_schedule.<field>`).

  decay: 'cosine' (to final_fraction x peak at the last step), 'rsqrt' or 'constant'.
  scale_rule 'linear'/'sqrt': `learning_rate` is the base rate at `reference_batch`
  examples per update; the peak is `scaled_learning_rate(learning_rate, effective_batch,
  reference_batch, scale_rule)`, where the effective batch (batch x accumulation steps)
  comes from the trainer. 'none' (default): `learning_rate` is the peak.
  warmup_start: 'zero' (default) ramps linearly from 0 to the peak over `warmup_steps`;
  'base' ramps from the unscaled `learning_rate` (Goyal et al.'s gradual warmup)."""
  learning_rate: float = 1e-3
  warmup_steps: int = 500
  decay: str = "cosine"
  final_fraction: float = 0.05
  scale_rule: str = "none"
  reference_batch: int = 0
  warmup_start: str = "zero"

  def __post_init__(self):
    errors.check_field_types(self, "learning_rate_schedule")


def make_schedule(total_steps: int, cfg: ScheduleConfig = ScheduleConfig(),
                  effective_batch: int = 0):
  """`cfg` over `total_steps` -> a Keras LearningRateSchedule."""
  peak = scaled_learning_rate(cfg.learning_rate, effective_batch, cfg.reference_batch,
                              cfg.scale_rule)
  if cfg.warmup_start not in ("zero", "base"):
    raise UserError(f"gin binding learning_rate_schedule.warmup_start="
                    f"{cfg.warmup_start!r}: use 'zero' or 'base'")
  start = float(cfg.learning_rate) if cfg.warmup_start == "base" else 0.0
  warmup_steps = min(cfg.warmup_steps, max(total_steps - 1, 1))
  if cfg.decay == "rsqrt":
    return WarmupRsqrt(peak, warmup_steps, start)
  if cfg.decay in ("cosine", "constant"):
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=start, decay_steps=max(total_steps - warmup_steps, 1),
        alpha=1.0 if cfg.decay == "constant" else cfg.final_fraction,
        warmup_target=peak, warmup_steps=warmup_steps)
  raise UserError(f"gin binding learning_rate_schedule.decay={cfg.decay!r}: use 'cosine', "
                  "'rsqrt' or 'constant'")


class OnStep(keras.optimizers.schedules.LearningRateSchedule):
  """`schedule` read at the run's step counter `step` instead of at the optimizer's own
  `iterations`: several optimizers that each update on some of the steps only (one per
  problem of a mixture) then all follow the run's one schedule."""

  def __init__(self, schedule, step: tf.Variable):
    super().__init__()
    self.schedule, self.step = schedule, step

  def __call__(self, iterations):
    del iterations  # this optimizer's own update count: not the run's step
    return self.schedule(self.step)

  def get_config(self):
    return {"schedule": keras.optimizers.schedules.serialize(self.schedule)}


@keras.saving.register_keras_serializable("onemodel")
class Lars(keras.optimizers.Optimizer):
  """LARS: momentum SGD with a layer-wise trust ratio (You et al. 2017, arXiv:1708.03888,
  Algorithm 1).

  For each adapted variable w with gradient g (weight decay `wd`, coefficient `eta`):
    local_lr = eta * |w| / (|g| + wd * |w|)      (1.0 if |w| or |g| is 0)
    v <- momentum * v + lr * local_lr * (g + wd * w)
    w <- w - v
  Variables of rank < 2 (biases, LayerNorm gamma/beta) and variables whose name or path
  matches `exclude_from_weight_decay(var_names=...)` are neither adapted nor decayed:
    v <- momentum * v + lr * g.
  Weight decay is part of the update (as in the paper), not Keras' decoupled decay, so
  the base class' `weight_decay` stays None."""

  def __init__(self, learning_rate=0.1, momentum=0.9, weight_decay_rate=0.0, eta=0.001,
               epsilon=0.0, name="lars", **kwargs):
    kwargs.pop("weight_decay", None)
    super().__init__(learning_rate=learning_rate, name=name, **kwargs)
    self.momentum = momentum
    self.weight_decay_rate = weight_decay_rate
    self.eta = eta
    self.epsilon = epsilon

  def build(self, var_list):
    if self.built:
      return
    super().build(var_list)
    self._velocities = self.add_optimizer_variables(var_list, "velocity")

  def _adapted(self, variable) -> bool:
    if len(variable.shape) < 2 or not self._use_weight_decay(variable):
      return False
    pattern = getattr(self, "_exclude_from_weight_decay_pattern", None)
    path = getattr(variable, "path", variable.name)
    return pattern is None or pattern.search(path) is None

  def trust_ratio(self, gradient, variable):
    """eta * |w| / (|g| + wd |w|), or 1.0 where a norm is zero (a scalar tensor)."""
    w = tf.convert_to_tensor(variable)
    g = tf.cast(gradient, w.dtype)
    w_norm, g_norm = tf.norm(w), tf.norm(g)
    ratio = self.eta * w_norm / (g_norm + self.weight_decay_rate * w_norm + self.epsilon)
    return tf.where((w_norm > 0) & (g_norm > 0), ratio, tf.ones_like(ratio))

  def update_step(self, gradient, variable, learning_rate):
    lr = tf.cast(learning_rate, variable.dtype)
    g = tf.cast(gradient, variable.dtype)
    v = self._velocities[self._get_variable_index(variable)]
    if self._adapted(variable):
      g = self.trust_ratio(g, variable) * (g + self.weight_decay_rate * variable)
    self.assign(v, self.momentum * v + lr * g)
    self.assign_sub(variable, v)

  def get_config(self):
    config = super().get_config()
    config.update(momentum=self.momentum, weight_decay_rate=self.weight_decay_rate,
                  eta=self.eta, epsilon=self.epsilon)
    return config


OPTIMIZERS = ("adamw", "adam", "sgd", "lamb", "lars", "adafactor")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """The optimizer (gin: `optimizer.<field>`). `clipnorm` (global-norm clipping) is
  applied by the trainer, not by Keras: under MirroredStrategy Keras clips each replica's
  partial gradient before summing them, which is not the global gradient's norm.

  name: 'adamw', 'adam', 'sgd' (momentum beta_1), 'lamb' (keras.optimizers.Lamb: Adam
  moments with the trust ratio |w| / |m_hat / (sqrt(v_hat) + eps)| per variable; its
  `weight_decay` is Keras' decoupled decay, applied outside the trust ratio), 'lars'
  (`Lars`: momentum beta_1, trust coefficient `lars_eta`, `weight_decay` inside the trust
  ratio as in the paper), 'adafactor' (keras.optimizers.Adafactor with the schedule's rate;
  beta_1/beta_2/epsilon unused)."""
  name: str = "adamw"
  weight_decay: float = 0.01
  beta_1: float = 0.9
  beta_2: float = 0.98
  epsilon: float = 1e-9
  clipnorm: float = 1.0
  lars_eta: float = 0.001

  def __post_init__(self):
    errors.check_field_types(self, "optimizer")


def make_optimizer(total_steps: int, cfg: OptimizerConfig = OptimizerConfig(),
                   schedule: ScheduleConfig = ScheduleConfig(), effective_batch: int = 0,
                   step: Optional[tf.Variable] = None):
  """-> (Keras optimizer on `schedule`, clipnorm). `effective_batch` (per-update batch
  incl. gradient accumulation) feeds the schedule's learning-rate scaling rule. `step`:
  the schedule follows this counter instead of the optimizer's own update count."""
  lr = make_schedule(total_steps, schedule, effective_batch)
  if step is not None:
    lr = OnStep(lr, step)
  if cfg.name == "adamw":
    opt = keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay, beta_1=cfg.beta_1,
                                  beta_2=cfg.beta_2, epsilon=cfg.epsilon)
  elif cfg.name == "adam":
    opt = keras.optimizers.Adam(lr, beta_1=cfg.beta_1, beta_2=cfg.beta_2,
                                epsilon=cfg.epsilon)
  elif cfg.name == "sgd":
    opt = keras.optimizers.SGD(lr, momentum=cfg.beta_1)
  elif cfg.name == "lamb":
    opt = keras.optimizers.Lamb(lr, beta_1=cfg.beta_1, beta_2=cfg.beta_2,
                                epsilon=cfg.epsilon, weight_decay=cfg.weight_decay or None)
  elif cfg.name == "lars":
    opt = Lars(lr, momentum=cfg.beta_1, weight_decay_rate=cfg.weight_decay,
               eta=cfg.lars_eta)
  elif cfg.name == "adafactor":
    opt = keras.optimizers.Adafactor(lr, relative_step=False,
                                     weight_decay=cfg.weight_decay or None)
  else:
    raise UserError(f"gin binding optimizer.name={cfg.name!r}: use one of "
                    + ", ".join(repr(n) for n in OPTIMIZERS))
  return opt, cfg.clipnorm


def build_optimizers(names, variables, total_steps: int, cfg: OptimizerConfig,
                     schedule: ScheduleConfig, effective_batch: int = 0,
                     step: Optional[tf.Variable] = None):
  """-> ({name: built optimizer}, clipnorm): one optimizer per name (one per problem of a
  mixture, or one), each with moments for every variable in `variables`; biases, norms
  and position tables are not decayed. `step`: as in `make_optimizer`."""
  no_decay = [v for v in variables
              if len(v.shape) < 2 or v.path.endswith("_pos") or "norm" in v.path]
  optimizers, clipnorm = {}, 0.0
  for name in names:
    opt, clipnorm = make_optimizer(total_steps, cfg, schedule, effective_batch, step)
    if hasattr(opt, "exclude_from_weight_decay"):
      # By object: Keras 3 variable *names* are bare ('gamma', 'kernel').
      opt.exclude_from_weight_decay(var_list=no_decay)
    opt.build(variables)
    optimizers[name] = opt
  return optimizers, clipnorm


# The gin names of the functions these configs replace, so existing configs still bind.
_GIN_OPTIMIZER = gin.external_configurable(OptimizerConfig, "optimizer",
                                           module="onemodel.optim")
_GIN_SCHEDULE = gin.external_configurable(ScheduleConfig, "learning_rate_schedule",
                                          module="onemodel.optim")


def from_gin() -> Tuple[OptimizerConfig, ScheduleConfig]:
  """The optimizer and schedule as gin binds them (for the edges only)."""
  return _GIN_OPTIMIZER(), _GIN_SCHEDULE()


def clip_global_gradient(grads, clipnorm: float):
  """Clips by the norm of the *global* gradient, inside a replica context.

  Each replica holds a partial sum of the gradient (its loss is divided by the global
  token count). With several replicas, the partial gradients are summed first, clipped,
  and handed back divided by the replica count, because the optimizer sums them again."""
  ctx = tf.distribute.get_replica_context()
  n = ctx.num_replicas_in_sync if ctx is not None else 1
  if n > 1:
    dense = [tf.convert_to_tensor(g) for g in grads]
    total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, dense)
    total, _ = tf.clip_by_global_norm(total, clipnorm)
    return [g / n for g in total]
  grads, _ = tf.clip_by_global_norm(grads, clipnorm)
  return grads

"""Keras optimizers with warmup + decay schedules, configured by gin."""

import math

import gin
import keras
import tensorflow as tf

from onemodel.errors import UserError


@keras.saving.register_keras_serializable("onemodel")
class WarmupRsqrt(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warmup, then decay with 1/sqrt(step) (Vaswani et al. 2017, eq. 3 shape)."""

  def __init__(self, peak, warmup_steps):
    self.peak, self.warmup_steps = peak, max(int(warmup_steps), 1)

  def __call__(self, step):
    step = tf.cast(step, tf.float32) + 1.0
    w = float(self.warmup_steps)
    return self.peak * tf.minimum(step / w, tf.math.rsqrt(step / w))

  def get_config(self):
    return {"peak": self.peak, "warmup_steps": self.warmup_steps}


@gin.configurable
def learning_rate_schedule(total_steps: int, learning_rate: float = 1e-3,
                           warmup_steps: int = 500, decay: str = "cosine",
                           final_fraction: float = 0.05):
  """decay: 'cosine' (to final_fraction x peak at total_steps), 'rsqrt' or 'constant'."""
  warmup_steps = min(warmup_steps, max(total_steps - 1, 1))
  if decay == "rsqrt":
    return WarmupRsqrt(learning_rate, warmup_steps)
  if decay in ("cosine", "constant"):
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=max(total_steps - warmup_steps, 1),
        alpha=1.0 if decay == "constant" else final_fraction,
        warmup_target=learning_rate, warmup_steps=warmup_steps)
  raise UserError(f"gin binding learning_rate_schedule.decay={decay!r}: use 'cosine', "
                  "'rsqrt' or 'constant'")


@gin.configurable
def optimizer(total_steps: int, name: str = "adamw", weight_decay: float = 0.01,
              beta_1: float = 0.9, beta_2: float = 0.98, epsilon: float = 1e-9,
              clipnorm: float = 1.0):
  """A Keras optimizer. `clipnorm` (global-norm clipping) is applied by the trainer, not
  by Keras: under MirroredStrategy Keras clips each replica's partial gradient before
  summing them, which is not the global gradient's norm."""
  lr = learning_rate_schedule(total_steps)
  clip = {}
  if name == "adamw":
    opt = keras.optimizers.AdamW(lr, weight_decay=weight_decay, beta_1=beta_1,
                                  beta_2=beta_2, epsilon=epsilon, **clip)
  elif name == "adam":
    opt = keras.optimizers.Adam(lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **clip)
  elif name == "sgd":
    opt = keras.optimizers.SGD(lr, momentum=beta_1, **clip)
  else:
    raise UserError(f"gin binding optimizer.name={name!r}: use 'adamw', 'adam' or 'sgd'")
  return opt, clipnorm


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

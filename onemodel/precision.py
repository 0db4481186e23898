"""Numeric precision of the model: float32, or bfloat16 compute with float32 variables.

Under 'mixed_bfloat16' (Keras' mixed precision policy) variables, the optimizer state,
layer norms' statistics, attention softmaxes and the output logits stay float32; the
matmuls run in bfloat16. Select it with the gin binding
`precision.policy = 'mixed_bfloat16'` and call `apply()` before building the model.
"""

import gin
import keras

from onemodel.errors import UserError

POLICIES = ("float32", "mixed_bfloat16")


@gin.configurable
def precision(policy: str = "float32") -> str:
  """The Keras dtype policy name to train with ('float32' or 'mixed_bfloat16')."""
  if policy not in POLICIES:
    raise UserError(f"gin binding precision.policy={policy!r}: use one of "
                    f"{', '.join(repr(p) for p in POLICIES)}")
  return policy


def apply(policy: str = "") -> str:
  """Sets Keras' global dtype policy (from gin's `precision.policy` unless `policy` is
  given) and returns its name. Call it before the model is built: layers take the
  global policy when they are constructed."""
  name = precision(policy) if policy else precision()
  keras.mixed_precision.set_global_policy(name)
  return name


def reset() -> None:
  """Back to float32 (for tests and tools that build several models in one process)."""
  keras.mixed_precision.set_global_policy("float32")

"""Numeric precision of the model: float32, or bfloat16 compute with float32 variables.

Under 'mixed_bfloat16' (Keras' mixed precision policy) variables, the optimizer state,
layer norms' statistics, attention softmaxes and the output logits stay float32; the
matmuls run in bfloat16. Select it with the gin binding
`precision.policy = 'mixed_bfloat16'`; the edges read it with `from_gin()` and call
`apply(policy)` before building the model.
"""

import gin
import keras

from onemodel.errors import UserError

POLICIES = ("float32", "mixed_bfloat16")


def check(policy: str) -> str:
  if policy not in POLICIES:
    raise UserError(f"gin binding precision.policy={policy!r}: use one of "
                    f"{', '.join(repr(p) for p in POLICIES)}")
  return policy


@gin.configurable("precision", module="onemodel.precision")
def from_gin(policy: str = "float32") -> str:
  """The Keras dtype policy name gin binds (`precision.policy`; for the edges only)."""
  return check(policy)


def apply(policy: str = "float32") -> str:
  """Sets Keras' global dtype policy to `policy` and returns its name. Call it before the
  model is built: layers take the global policy when they are constructed."""
  keras.mixed_precision.set_global_policy(check(policy))
  return policy


def reset() -> None:
  """Back to float32 (for tests and tools that build several models in one process)."""
  keras.mixed_precision.set_global_policy("float32")

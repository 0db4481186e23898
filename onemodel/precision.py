"""Numeric precision of the model: float32, or bfloat16 compute with float32 variables.

Under 'mixed_bfloat16' (Keras' mixed precision policy) variables, the optimizer state,
layer norms' statistics, attention softmaxes and the output logits stay float32; the
matmuls run in bfloat16. Select it with the gin binding
`precision.policy = 'mixed_bfloat16'`; the edges read it with `from_gin()` and call
`apply(policy)` before building the model.

`precision.policy = 'auto'` picks by the CPU: 'mixed_bfloat16' where it has bfloat16
matmul instructions (AVX512-BF16 or AMX-BF16, oneDNN's bf16 paths), where bfloat16
steps are faster; 'float32' elsewhere, where oneDNN emulates bfloat16 and the same step
is slower than in float32. Recipes that use it run each machine's faster path.
"""

import gin
import keras

from onemodel.errors import UserError

POLICIES = ("float32", "mixed_bfloat16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
  """Whether the CPU has bfloat16 matmul instructions (Linux' flags; False elsewhere)."""
  try:
    with open(cpuinfo) as f:
      flags = set(f.read().split())
  except OSError:
    return False
  return any(flag in flags for flag in BF16_CPU_FLAGS)


def resolve(policy: str, cpuinfo: str = "/proc/cpuinfo") -> str:
  """'auto' -> this machine's faster policy; other names are checked and returned."""
  if policy == "auto":
    return "mixed_bfloat16" if cpu_has_bf16(cpuinfo) else "float32"
  return check(policy)


def check(policy: str) -> str:
  if policy not in POLICIES:
    raise UserError(f"gin binding precision.policy={policy!r}: use one of "
                    f"{', '.join(repr(p) for p in POLICIES + ('auto',))}")
  return policy


@gin.configurable("precision", module="onemodel.precision")
def from_gin(policy: str = "float32") -> str:
  """The Keras dtype policy name gin binds (`precision.policy`, 'auto' resolved for this
  machine; for the edges only)."""
  return resolve(policy)


def apply(policy: str = "float32") -> str:
  """Sets Keras' global dtype policy to `policy` and returns its name. Call it before the
  model is built: layers take the global policy when they are constructed."""
  keras.mixed_precision.set_global_policy(check(policy))
  return policy


def reset() -> None:
  """Back to float32 (for tests and tools that build several models in one process)."""
  keras.mixed_precision.set_global_policy("float32")

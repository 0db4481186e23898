"""The statistical side: how many optimizer steps reach the target at batch size B.

McCandlish et al. 2018 ("An Empirical Model of Large-Batch Training", arXiv:1812.06162,
eq. 2.11): steps and examples to a fixed loss trade off as

  S(B) = S_min (1 + B_noise / B)          E(B) = E_min (1 + B / B_noise)

with E_min = S_min * B_noise. Below B_noise, doubling the batch almost halves the steps
(perfect scaling in steps); above it, steps stop falling towards S_min.

When a source gives the epochs it ran (the linear-scaling-rule regime of Goyal et al.
2017, arXiv:1706.02677, or LARS/LAMB's fixed epoch budgets), those are used as they are.
"""

import dataclasses
import math
from typing import Optional

from onemodel.errors import UserError


def steps_from_noise_scale(batch: float, s_min: float, b_noise: float) -> float:
  """S(B) = S_min (1 + B_noise / B) (McCandlish et al. eq. 2.11)."""
  if batch <= 0:
    raise UserError(f"global batch must be positive, got {batch}")
  return s_min * (1.0 + b_noise / batch)


def s_min_from_reference(steps_ref: float, batch_ref: float, b_noise: float) -> float:
  """Inverts eq. 2.11 at one measured point (steps_ref at batch_ref)."""
  return steps_ref / (1.0 + b_noise / batch_ref)


def fit_epochs(points, dataset_size: float):
  """Least-squares fit of E(B) = E_min (1 + B / B_noise) through (batch, epochs) points:
  epochs is linear in B, epochs = a + c B with a = E_min and c = E_min / B_noise.
  Returns (E_min in epochs, B_noise in examples); B_noise is inf when epochs do not grow
  with batch over the points."""
  n = len(points)
  if n < 2:
    raise ValueError("need two (batch, epochs) points to fit E(B)")
  mb = sum(b for b, _ in points) / n
  me = sum(e for _, e in points) / n
  var = sum((b - mb) ** 2 for b, _ in points)
  c = sum((b - mb) * (e - me) for b, e in points) / var if var > 0 else 0.0
  a = me - c * mb
  if c <= 0:
    return me, math.inf
  return a, a / c


@dataclasses.dataclass(frozen=True)
class StepModel:
  """Steps to target of a workload: either fixed epochs, or S(B) from a noise scale."""
  dataset_size: float                 # examples per epoch (0: not an epoch-based workload)
  epochs: Optional[float] = None      # fixed epochs, whatever the batch
  s_min: Optional[float] = None       # eq. 2.11 parameters, batch in examples
  b_noise: Optional[float] = None
  note: str = ""

  def steps(self, batch: float) -> float:
    if batch <= 0:
      raise UserError(f"global batch must be positive, got {batch}")
    if self.epochs is not None:
      return self.epochs * self.dataset_size / batch
    if self.s_min is not None and self.b_noise is not None:
      return steps_from_noise_scale(batch, self.s_min, self.b_noise)
    raise UserError("the workload has neither epochs nor a noise scale: pass --epochs "
                    "or --steps")

  def describe(self) -> str:
    if self.epochs is not None:
      return f"fixed {self.epochs:g} epochs of {self.dataset_size:,.0f} examples" + \
             (f" ({self.note})" if self.note else "")
    return (f"S(B) = S_min (1 + B_noise/B), S_min = {self.s_min:,.0f}, B_noise = "
            f"{self.b_noise:,.0f} examples (McCandlish et al. 2018, eq. 2.11)" +
            (f"; {self.note}" if self.note else ""))

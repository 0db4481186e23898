"""Mixtures: several registered problems, of any modalities, trained by one model.

A mixture names problems and how often each is drawn for a training step:

* `rates='uniform'`: every problem equally often;
* `rates='proportional'`: in proportion to its training-set size, flattened by a
  temperature T (rate ~ size ** (1 / T); T=1 is proportional, large T tends to uniform);
* `rates={'mnist': 2.0, 'fsdd': 1.0}`: fixed weights (normalized);
* `schedule=((5000, 'proportional'),)`: from step 5000 on, use these rates instead
  ("uniform until step N, then proportional"); entries are (step, rates) in step order.

Mixtures are registered like problems (`register(Mixture(...))`, then usable wherever a
problem name is), or defined in gin and passed as the problem itself:

    joint/Mixture.name = 'joint'
    joint/Mixture.problems = ['mnist', 'fsdd', 'multi30k_en_de']
    joint/Mixture.rates = 'proportional'
    TrainConfig.problem = @joint/Mixture()

There is no "language model first" rule and no hand-made vocabulary: a mixture's problems
with text targets share one vocabulary learned from all their training text
(`shared_vocab_name`), as they share one embedding and softmax; a text classifier keeps
its own (data.get_vocabs). The problem for each training step is drawn from a generator
seeded by (seed, step), so a resumed run draws the same sequence it would have drawn.
"""

import dataclasses
from typing import Any, Dict, List, Sequence, Tuple, Union

import gin
import numpy as np

from onemodel import errors
from onemodel import registry
from onemodel.errors import UserError

Rates = Union[str, Dict[str, float]]


@gin.configurable
@dataclasses.dataclass(frozen=True)
class Mixture:
  name: str = ""
  problems: Tuple[str, ...] = ()
  rates: Any = "uniform"
  temperature: float = 1.0
  schedule: Tuple[Tuple[int, Any], ...] = ()
  description: str = ""

  def __post_init__(self):
    errors.check_field_types(self, "Mixture")
    # gin hands lists and dicts over as given; keep the value hashable and ordered.
    object.__setattr__(self, "problems", tuple(self.problems))
    object.__setattr__(self, "schedule", tuple((int(s), r) for s, r in self.schedule))

  def __hash__(self):
    return hash((self.name, self.problems))


def register(mixture: Mixture) -> Mixture:
  if mixture.name in registry.PROBLEMS:
    raise ValueError(f"mixture {mixture.name!r}: a problem of that name is registered")
  return registry.MIXTURES.register(mixture.name, mixture)


def resolve(task) -> Tuple[List, "Mixture"]:
  """A problem name, mixture name or `Mixture` -> (its problems, the mixture or None).

  Unknown names, inside a mixture too, are one `UserError` naming them."""
  if isinstance(task, Mixture):
    mixture = task
  elif task in registry.MIXTURES:
    mixture = registry.MIXTURES.get(task)
  else:
    if task not in registry.PROBLEMS:
      registry.get_task(task)  # raises, listing close problem and mixture names
    return [registry.get_problem(task)], None
  where = f"mixture {mixture.name or '(unnamed)'}"
  if not mixture.problems:
    raise UserError(f"{where} names no problems (gin binding Mixture.problems)")
  if len(set(mixture.problems)) != len(mixture.problems):
    raise UserError(f"{where} names a problem twice: {', '.join(mixture.problems)}")
  problems = []
  for name in mixture.problems:
    if name not in registry.PROBLEMS:
      close = registry.PROBLEMS.closest(name)
      raise UserError(f"{where}: unknown problem {name!r}"
                      + (f"; closest: {', '.join(close)}" if close else ""))
    problems.append(registry.get_problem(name))
  for _, rates in ((0, mixture.rates),) + mixture.schedule:
    _check_rates(rates, mixture, where)
  steps = [s for s, _ in mixture.schedule]
  if steps != sorted(steps):
    raise UserError(f"{where}: schedule steps must increase, got {steps}")
  return problems, mixture


def _check_rates(rates, mixture, where):
  if isinstance(rates, str):
    if rates not in ("uniform", "proportional"):
      raise UserError(f"{where}: rates {rates!r}: use 'uniform', 'proportional' or a "
                      "{problem: weight} dict")
    return
  if not isinstance(rates, dict):
    raise UserError(f"{where}: rates must be 'uniform', 'proportional' or a dict, "
                    f"got {rates!r}")
  unknown = sorted(set(rates) - set(mixture.problems))
  if unknown:
    raise UserError(f"{where}: rates name {', '.join(unknown)}, which the mixture does "
                    "not contain")
  if any(float(w) < 0 for w in rates.values()) or not sum(map(float, rates.values())):
    raise UserError(f"{where}: rates must be non-negative and not all zero: {rates}")


def rate_vector(rates: Rates, names: Sequence[str], sizes: Sequence[float],
                temperature: float = 1.0) -> np.ndarray:
  """Normalized sampling probabilities, in `names` order."""
  if rates == "uniform":
    w = np.ones(len(names))
  elif rates == "proportional":
    w = np.asarray(sizes, np.float64) ** (1.0 / max(temperature, 1e-6))
  else:
    w = np.asarray([float(rates.get(n, 0.0)) for n in names])
  return w / w.sum()


class Sampler:
  """Which problem trains at each step: a pure function of (seed, step)."""

  def __init__(self, mixture: Mixture, names: Sequence[str], sizes: Sequence[float],
               seed: int = 0):
    self.names, self.seed = list(names), seed
    self.phases = [(0, rate_vector(mixture.rates, names, sizes, mixture.temperature))]
    for step, rates in mixture.schedule:
      self.phases.append((step, rate_vector(rates, names, sizes, mixture.temperature)))

  def rates_at(self, step: int) -> np.ndarray:
    current = self.phases[0][1]
    for start, rates in self.phases:
      if step >= start:
        current = rates
    return current

  def problem_index(self, step: int) -> int:
    u = np.random.default_rng([self.seed, step]).random()
    return int(min(np.searchsorted(np.cumsum(self.rates_at(step)), u, side="right"),
                   len(self.names) - 1))

  def phases_in(self, start: int, num_steps: int) -> List[Tuple[np.ndarray, int]]:
    """Steps start..start+num_steps-1 as (rates, consecutive count) runs, one per phase
    of the schedule they touch ('summed' updates weight every problem by its rate)."""
    end = start + num_steps
    cuts = sorted({start, end} | {s for s, _ in self.phases if start < s < end})
    return [(self.rates_at(a), b - a) for a, b in zip(cuts, cuts[1:])]

  def runs(self, start: int, num_steps: int) -> List[Tuple[int, int]]:
    """Steps start..start+num_steps-1 as (problem index, consecutive count) runs."""
    out = []
    for step in range(start, start + num_steps):
      i = self.problem_index(step)
      if out and out[-1][0] == i:
        out[-1] = (i, out[-1][1] + 1)
      else:
        out.append((i, 1))
    return out


def shared_vocab_name(problems: Sequence, kind: str) -> str:
  """Where the shared vocabulary of these problems' `kind` text features is saved:
  one name per set of problems, so mixtures over the same problems share it."""
  return "shared_" + kind + "_" + "_".join(sorted(p.name for p in problems))

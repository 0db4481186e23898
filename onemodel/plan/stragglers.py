"""Straggler wait of synchronous training: every step waits for the slowest of N
workers (Chen et al. 2016, "Revisiting distributed synchronous SGD", arXiv:1604.00981,
sec. 2: the step time is the maximum over workers).

With per-worker step times ~ Normal(mu, sigma), E[max of N] = mu + sigma * e_N, where e_N
is the expected maximum of N standard normals,
  e_N = integral of x * N phi(x) Phi(x)^(N-1) dx,
computed here by the trapezoidal rule (e_2 = 1/sqrt(pi); grows like sqrt(2 ln N)).
"""

import functools
import math

_H = 0.005
_GRID = [(-10.0 + _H * i,
          math.exp(-0.5 * (-10.0 + _H * i) ** 2) / math.sqrt(2 * math.pi),
          0.5 * (1.0 + math.erf((-10.0 + _H * i) / math.sqrt(2.0))))
         for i in range(int(20.0 / _H) + 1)]


@functools.lru_cache(maxsize=None)
def expected_max_std_normal(n: int) -> float:
  if n <= 1:
    return 0.0
  # The integrand vanishes at both ends of [-10, 10]: a plain sum is the trapezoid rule.
  return _H * sum(x * n * pdf * cdf ** (n - 1) for x, pdf, cdf in _GRID)


def straggler_wait_s(step_mean_s: float, cv: float, n: int) -> float:
  """Expected extra wait per step for N workers whose step times have coefficient of
  variation `cv` (sigma / mu)."""
  return step_mean_s * cv * expected_max_std_normal(n)


def per_step_cv(interval_means, steps_per_interval: int) -> float:
  """Per-step coefficient of variation from the means of logging intervals of k steps:
  a mean of k independent steps has sigma / sqrt(k), so sigma_step = sigma_interval *
  sqrt(k). Needs at least 3 intervals."""
  xs = [x for x in interval_means if x > 0 and math.isfinite(x)]
  if len(xs) < 3:
    raise ValueError("need at least 3 logging intervals for a step-time spread")
  mu = sum(xs) / len(xs)
  var = sum((x - mu) ** 2 for x in xs) / (len(xs) - 1)
  return math.sqrt(var) / mu * math.sqrt(max(steps_per_interval, 1))

"""The statistics of benchmarks/joint_vs_single.py's table (issue #15): mean ± sd over
seeds and the joint-minus-single difference with a 95% t-interval paired by seed. Imports
only benchmarks/runlib.py (no TensorFlow)."""

import math
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
import runlib  # noqa: E402


def test_paired_interval_hand_checked():
  # Differences b - a = 1, 2, 2: mean 5/3, sd sqrt(1/3), se 1/3, t_{0.975,2} = 4.3027,
  # so 5/3 ± 1.43423 = [0.23244, 3.10090].
  mean, low, high = runlib.paired_interval([1.0, 2.0, 3.0], [2.0, 4.0, 5.0])
  assert mean == pytest.approx(5 / 3)
  assert low == pytest.approx(5 / 3 - 4.3027 / 3)
  assert high == pytest.approx(5 / 3 + 4.3027 / 3)
  assert (low, high) == pytest.approx((0.23244, 3.10090), abs=1e-4)


def test_paired_not_unpaired():
  # A shared per-seed offset cancels: equal differences give a zero-width interval.
  assert runlib.paired_interval([10.0, 50.0, 90.0], [11.0, 51.0, 91.0]) == \
      pytest.approx((1.0, 1.0, 1.0))


def test_mean_sd_and_t_quantiles():
  assert runlib.mean_sd([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
  assert runlib.mean_sd([4.0]) == (4.0, 0.0)
  assert runlib.t975(1) == pytest.approx(12.7062)
  assert runlib.t975(60) == pytest.approx(2.0003, abs=1e-3)  # beyond the table
  assert runlib.t975(10 ** 6) == pytest.approx(1.96, abs=1e-3)


def test_paired_interval_needs_two_pairs():
  with pytest.raises(ValueError):
    runlib.paired_interval([1.0], [2.0])
  with pytest.raises(ValueError):
    runlib.paired_interval([1.0, 2.0], [1.0])
  assert not math.isnan(runlib.paired_interval([0.0, 0.0], [1.0, 1.0])[0])

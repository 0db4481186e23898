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


def test_model_size_is_the_same_for_every_run(monkeypatch):
  """--model=tiny puts tiny.gin after every run's experiment or base file (so singles,
  joint and ablated runs all have the tiny backbone), and the default ablation shrinks
  tiny's own ffn_dim (64), not base's."""
  import joint_vs_single as jvs
  monkeypatch.setattr(sys, "argv", ["joint_vs_single.py", "--model=tiny",
                                    "--steps=mnist:100,sst2:100", "--seeds=0,1"])
  args = jvs.parse_args()
  assert args.ablation == "BackboneConfig.ffn_dim=16"
  assert args.output_root.endswith("joint_vs_single_fair_tiny")
  assert jvs.out_name(args, ".md").endswith("joint_vs_single_tiny.md")
  _, _, specs = jvs.plan(args)
  assert [s["kind"] for s in specs] == ["single", "single", "joint", "ablated"] * 2
  for s in specs:
    assert s["params"].count("include 'models/tiny.gin'") == 1, s["name"]
    # after anything that sets the backbone: the last ffn_dim binding wins
    ffn = [p for p in s["params"] if p.startswith("BackboneConfig.ffn_dim")]
    assert ffn == (["BackboneConfig.ffn_dim = 16"] if s["kind"] == "ablated" else [])
    if ffn:
      assert s["params"].index(ffn[0]) > s["params"].index("include 'models/tiny.gin'")
  monkeypatch.setattr(sys, "argv", ["joint_vs_single.py"])
  args = jvs.parse_args()
  assert args.ablation == "BackboneConfig.ffn_dim=256" and args.model == "base"
  assert not any("models/" in p for s in jvs.plan(args)[2] for p in s["params"])

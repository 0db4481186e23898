"""The statistics of benchmarks/joint_vs_single.py's table (issue #15): mean ± sd over
seeds and the joint-minus-single difference with a 95% t-interval paired by seed. Imports
only benchmarks/runlib.py (no TensorFlow)."""

import json
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


def test_final_metrics_reads_the_newest_test_evaluation_tagged_or_not(tmp_path):
  """A run with TrainConfig.select writes its final test pass as
  metrics_test_best_stepN.json (the best step, below the last): that one is the run's
  test figure; another process's later evaluations (onemodel-eval's tags) are not; in a
  joint run, the asked problem's, and none without a problem; files without a time
  are ordered by their own."""
  def write(name, problem, step, when, acc, split="test", mixture=None, tag=""):
    record = {"problem": problem, "mixture": mixture, "split": split, "step": step,
              "tag": tag, "metrics": {"accuracy": acc}}
    if when is not None:
      record["time"] = when
    with open(tmp_path / name, "w") as f:
      json.dump(record, f)
  write("metrics_test_step2500.json", "sst2", 2500, 100.0, 80.0)
  write("metrics_eval_step2500.json", "sst2", 2500, 300.0, 70.0, split="eval")
  assert runlib.final_metrics(str(tmp_path)) == {"accuracy": 80.0}
  write("metrics_test_best_step1750.json", "sst2", 1750, 200.0, 82.0, tag="best")
  write("metrics_test_averaged_step2500.json", "sst2", 2500, 500.0, 90.0, tag="averaged")
  assert runlib.final_metrics(str(tmp_path)) == {"accuracy": 82.0}
  assert runlib.final_metrics(str(tmp_path), role="eval") == {"accuracy": 70.0}
  joint = tmp_path / "joint"
  joint.mkdir()
  tmp_path = joint
  write("metrics_test_best_mnist_step900.json", "mnist", 900, 400.0, 99.0, mixture="j",
        tag="best")
  write("metrics_test_sst2_step900.json", "sst2", 900, 300.0, 81.0, mixture="j")
  assert runlib.final_metrics(str(joint), "sst2") == {"accuracy": 81.0}
  assert runlib.final_metrics(str(joint), "mnist") == {"accuracy": 99.0}
  assert runlib.final_metrics(str(joint), "fsdd") is None
  assert runlib.final_metrics(str(joint)) is None
  old = tmp_path / "old"
  old.mkdir()
  tmp_path = old
  write("metrics_test_step10.json", "sst2", 10, None, 60.0)
  os.utime(old / "metrics_test_step10.json", (1000, 1000))
  write("metrics_test_step20.json", "sst2", 20, None, 61.0)
  os.utime(old / "metrics_test_step20.json", (2000, 2000))
  assert runlib.final_metrics(str(old)) == {"accuracy": 61.0}


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


def test_transfer_ledger_decides_what_runs(tmp_path, monkeypatch):
  """benchmarks/transfer.py across sessions: a target run in its experiment's ledger is
  not trained again, and a seed's source is trained again only while one of that seed's
  arms is missing (run directories of an earlier machine need not exist)."""
  import transfer
  args = type("Args", (), {"experiments": ["joint_to_sst2", "joint_to_fsdd_10pct"],
                           "seeds": [0, 1], "smoke": False, "curve_every": 250,
                           "output_root": str(tmp_path)})()
  specs = transfer.plan(args)
  assert [s["name"] for s in specs if s["kind"] == "source"] == ["src_joint_s0",
                                                                  "src_joint_s1"]
  done = {f"joint_to_sst2_{arm}_s0": {} for arm in ("scratch", "backbone",
                                                    "backbone_frozen")}
  ledgers = {"joint_to_sst2": dict(done), "joint_to_fsdd_10pct": {
      "joint_to_fsdd_10pct_scratch_s0": {}, "joint_to_fsdd_10pct_backbone_s0": {}}}
  names = [s["name"] for s in transfer.to_run(specs, ledgers, str(tmp_path))]
  assert names == ["src_joint_s1", "joint_to_sst2_scratch_s1", "joint_to_sst2_backbone_s1",
                   "joint_to_sst2_backbone_frozen_s1", "joint_to_fsdd_10pct_scratch_s1",
                   "joint_to_fsdd_10pct_backbone_s1"]
  del ledgers["joint_to_fsdd_10pct"]["joint_to_fsdd_10pct_backbone_s0"]
  names = [s["name"] for s in transfer.to_run(specs, ledgers, str(tmp_path))]
  assert names[0] == "src_joint_s0" and "joint_to_fsdd_10pct_backbone_s0" in names
  assert not any(n.endswith("_s0") for n in names[1:] if n != "joint_to_fsdd_10pct_backbone_s0")
  fsdd = next(s for s in specs if s["name"] == "joint_to_fsdd_10pct_backbone_s0")
  assert "TrainConfig.train_split = 'train[:10%]'" in fsdd["params"]
  assert f"TrainConfig.init_from = '{tmp_path}/src_joint_s0'" in fsdd["params"]


def test_transfer_ledger_records_a_finished_run(tmp_path, monkeypatch):
  """A finished target run goes into the ledger with its test value, curve, the bindings
  and minutes of its run record and the peak its log reports; the table is rebuilt from
  the ledger alone; a run trained with other bindings is refused, not mixed in."""
  import json
  import transfer
  monkeypatch.setattr(transfer, "RESULTS", str(tmp_path / "results"))
  monkeypatch.setattr(sys, "argv", ["transfer.py", "--seeds=0,1"])
  root = tmp_path / "runs"
  args = type("Args", (), {"experiments": ["joint_to_fsdd_10pct"], "seeds": [0, 1],
                           "smoke": False, "curve_every": 250, "output_root": str(root)})()
  specs = transfer.plan(args)
  ledger = {}
  for s, (test, curve, minutes) in zip(
      [s for s in specs if s["kind"] == "target"],
      [(4.0, 9.0, 3.0), (3.0, 8.0, 2.0), (6.0, 12.0, 3.2), (4.0, 10.0, 2.2)]):
    run = root / s["name"]
    run.mkdir(parents=True)
    for role, step, value in (("eval", 250, curve), ("test", 1500, test)):
      (run / f"metrics_{role}_step{step}.json").write_text(json.dumps(
          {"metrics": {"wer": value}, "step": step, "split": role, "problem": "fsdd",
           "time": 1000.0 + step}))
    (root / f"{s['name']}.run.json").write_text(json.dumps(
        {"name": s["name"], "rc": 0, "wall_s": minutes * 60, "params": s["params"]}))
    (root / f"{s['name']}.log").write_text(
        "matmul peak of this machine: 100 GFLOP/s (fp32; MFU is measured against it)\n")
    transfer.record(s, str(root), ledger, "")
  saved = transfer.load_ledger("joint_to_fsdd_10pct")
  assert saved == ledger and len(saved) == 4
  e = saved["joint_to_fsdd_10pct_backbone_s1"]
  assert (e["test"], e["curve"], e["minutes"], e["peak_gflops"]) == (4.0, {"250": 10.0},
                                                                     2.2, 100.0)
  md = (tmp_path / "results" / "transfer_joint_to_fsdd_10pct.md").read_text()
  # scratch 4, 6; backbone 3, 4: differences -1, -2 -> mean -1.5; minutes x 100/200.
  assert "| joint_to_fsdd_10pct | backbone | 3.50 ± 0.71 | 2 | -1.50 [" in md
  assert "| 2.1 (1.1) | 3.00, 4.00 |" in md
  assert "test wer (lower is better)" in md
  assert transfer.to_run(specs, {"joint_to_fsdd_10pct": saved}, str(root)) == []
  changed = dict(saved)
  changed["joint_to_fsdd_10pct_scratch_s0"] = {
      **saved["joint_to_fsdd_10pct_scratch_s0"],
      "params": saved["joint_to_fsdd_10pct_scratch_s0"]["params"][1:]}
  with pytest.raises(SystemExit, match="scratch_s0: the ledger's run had other bindings"):
    transfer.to_run(specs, {"joint_to_fsdd_10pct": changed}, str(root))
  # The recipe file changed since the run (its digest, or for older entries the file at
  # their commit): refused too.
  changed["joint_to_fsdd_10pct_scratch_s0"] = {
      **saved["joint_to_fsdd_10pct_scratch_s0"], "recipe": "0" * 16}
  with pytest.raises(SystemExit, match="scratch_s0: the ledger's run trained another .*"
                                       "fsdd.gin"):
    transfer.to_run(specs, {"joint_to_fsdd_10pct": changed}, str(root))
  legacy = {k: {kk: vv for kk, vv in e.items() if kk != "recipe"} for k, e in saved.items()}
  for e in legacy.values():
    e["commit"] = "HEAD"  # fsdd.gin as committed: this checkout's, unless edited
  assert transfer.to_run(specs, {"joint_to_fsdd_10pct": legacy}, str(root)) == []
  for commit in ("no-such-commit", None):  # not in this clone; an entry without one
    legacy["joint_to_fsdd_10pct_scratch_s0"]["commit"] = commit
    with pytest.raises(SystemExit, match="scratch_s0: the ledger's run trained an unknown "
                                         "version of gin/experiments/fsdd.gin"):
      transfer.to_run(specs, {"joint_to_fsdd_10pct": legacy}, str(root))


def test_joint_run_is_compared_with_the_same_seeds_four_singles():
  import time_to_target as ttt
  tests = {"mnist": 99.2, "fsdd": 2.0, "sst2": 81.0, "multi30k_en_de": 35.5}

  def rec(problem, seed, run_s, rc=0):
    per = ttt.JOINT_PROBLEMS if problem == ttt.JOINT else (problem,)
    return {"problem": problem, "seed": seed, "run_s": run_s, "rc": rc,
            "problems": {p: {"test": tests[p]} for p in per}}
  records = [rec(ttt.JOINT, 0, 600.0), rec("mnist", 0, 60.0), rec("fsdd", 0, 120.0),
             rec("sst2", 0, 180.0), rec("multi30k_en_de", 0, 1140.0),
             rec(ttt.JOINT, 1, 500.0), rec("mnist", 1, 60.0), rec("fsdd", 1, 1.0, rc=1),
             rec("sst2", 1, 180.0), rec("multi30k_en_de", 1, 1140.0),
             {"peer": "mnist_convnet", "problem": "mnist", "seed": 0, "run_s": 9e9,
              "rc": 0}]
  (x,) = ttt.joint_vs_singles(records)  # seed 1's fsdd failed: no comparison for it
  assert x["seed"] == 0 and x["singles_s"] == 1500.0 and x["ratio"] == 0.4
  assert x["joint_met"] == x["singles_met"] == ["mnist", "fsdd", "multi30k_en_de"]


def test_seeds_to_detect_and_the_verdict_in_words():
  # t_{0.975,5} / sqrt(6) = 1.05 > 1, t_{0.975,6} / sqrt(7) = 0.92 < 1
  assert runlib.seeds_to_detect(1.0, 1.0) == 7
  assert runlib.seeds_to_detect(-1.0, 1.0) == 7
  assert runlib.seeds_to_detect(0.0, 1.0) is None
  assert runlib.verdict(0.5, 0.1, 0.9, 3, 0.2) == "gain"
  assert runlib.verdict(0.5, 0.1, 0.9, 3, 0.2, better="lower") == "loss"
  assert runlib.verdict(-0.5, -0.9, -0.1, 3, 0.2, better="lower") == "gain"
  assert runlib.verdict(1.0, -0.5, 2.5, 3, 1.0) == (
      "no difference detectable with 3 seeds (about 7 would detect one of this size)")


def test_joint_minus_single_is_paired_by_seed_in_the_right_direction():
  import time_to_target as ttt

  def rec(problem, seed, values, rc=0):
    per = ttt.JOINT_PROBLEMS if problem == ttt.JOINT else (problem,)
    return {"problem": problem, "seed": seed, "run_s": 1.0, "rc": rc,
            "problems": {p: {"test": values[p]} for p in per}}
  single = {0: {"mnist": 99.0, "fsdd": 3.0, "sst2": 82.0, "multi30k_en_de": 35.0},
            1: {"mnist": 99.2, "fsdd": 2.0, "sst2": 83.0, "multi30k_en_de": 36.0},
            2: {"mnist": 99.1, "fsdd": 2.5, "sst2": 81.0, "multi30k_en_de": 34.0}}
  # joint: mnist +0.1 on every seed (gain), fsdd WER +1.0 on every seed (a loss: lower
  # is better), sst2 +2/-2/0 (nothing detectable), Multi30k only seed 0 and 1 in pairs
  joint = {s: {"mnist": v["mnist"] + 0.1, "fsdd": v["fsdd"] + 1.0,
               "sst2": v["sst2"] + (2.0, -2.0, 1.0)[s],
               "multi30k_en_de": v["multi30k_en_de"] - 1.0} for s, v in single.items()}
  records = [rec(p, s, single[s]) for s in single for p in ttt.JOINT_PROBLEMS]
  records += [rec(ttt.JOINT, s, joint[s], rc=1 if s == 2 else 0) for s in joint]
  records[3]["rc"] = 1  # seed 0's Multi30k single failed
  rows = {r["problem"]: r for r in ttt.joint_minus_single(records)}
  assert rows["mnist"]["seeds"] == [0, 1] and rows["mnist"]["words"] == "gain"
  assert rows["mnist"]["diff"] == pytest.approx(0.1)
  assert rows["fsdd"]["words"] == "loss"
  assert rows["sst2"]["diff"] == pytest.approx(0.0)
  assert rows["sst2"]["words"] == "no difference detectable with 2 seeds"
  assert rows["multi30k_en_de"]["seeds"] == [1] and "diff" not in rows["multi30k_en_de"]
  text = "\n".join(ttt.joint_minus_single_lines(list(rows.values())))
  assert "| fsdd | wer | 2 | 2.50 ± 0.71 | 3.50 ± 0.71 | +1.00 [+1.00, +1.00] | loss |" in text
  assert "| multi30k_en_de | bleu | 1 |" in text and "- (one seed)" in text

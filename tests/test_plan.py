"""The scale planner: its pieces on hand-computed cases, its limits, the records table,
and bad input through the CLI (one line naming the thing, exit 1). No test asserts a
timing of this machine."""

import dataclasses
import json
import math
import os
import subprocess
import sys

import pytest

from onemodel.errors import UserError
from onemodel.plan import (calibrate, collectives, hardware, model_parallel, planner,
                           records, scaling, steps, stragglers, workloads)

BIN = os.path.dirname(sys.executable)


# --- collectives ---------------------------------------------------------------------

def test_ring_allreduce_hand_computed():
  # 2 (N-1)/N * bytes / bw + 2 (N-1) * latency = 2*3/4 * 1e9/1e10 + 6 * 1e-5
  assert collectives.ring_allreduce_s(1e9, 4, 1e10, 1e-5) == pytest.approx(0.15006)
  assert collectives.ring_allreduce_s(1e9, 1, 1e10, 1e-5) == 0.0


def test_hierarchical_reduces_to_ring_at_either_level():
  ring_intra = collectives.ring_allreduce_s(4e8, 8, 1.5e11, 5e-6)
  assert collectives.hierarchical_allreduce_s(4e8, 8, 8, 1.5e11, 5e-6, 1e10, 1e-6) == \
      pytest.approx(ring_intra)
  ring_inter = collectives.ring_allreduce_s(4e8, 16, 1e10, 1e-6)
  assert collectives.hierarchical_allreduce_s(4e8, 16, 1, 1.5e11, 5e-6, 1e10, 1e-6) == \
      pytest.approx(ring_inter)


def test_torus_bytes_term_and_dims():
  assert collectives.torus_dims(1024, 2) == [32, 32]
  assert collectives.torus_dims(4096, 3) == [16, 16, 16]
  # 2 (N-1)/N * 1e9 / 1e11 + hops (2*31 + 2*31) * 0 = 0.02 * 1023/1024
  assert collectives.torus_allreduce_s(1e9, 1024, 2, 1e11, 0.0) == \
      pytest.approx(0.02 * 1023 / 1024)


def test_parameter_server_slower_side_wins():
  # worker side 2 * 1e8 / 1e9 = 0.2 s; server side 2 * 8 * 1e8 / (2 * 1e9) = 0.8 s
  assert collectives.parameter_server_s(1e8, 8, 2, 1e9, 1e9, 0.0) == pytest.approx(0.8)
  assert collectives.parameter_server_s(1e8, 1, 1, 1e9, 1e9, 0.0) == pytest.approx(0.2)


# --- statistics, stragglers, model parallelism ---------------------------------------

def test_noise_scale_step_formula():
  assert steps.steps_from_noise_scale(100, 1000, 100) == pytest.approx(2000)
  s_min = steps.s_min_from_reference(3000, 100, 200)
  assert s_min == pytest.approx(1000)
  assert steps.steps_from_noise_scale(1e9, 1000, 100) == pytest.approx(1000, rel=1e-6)


def test_small_batch_scales_perfectly_in_steps():
  # B << B_noise: doubling B halves the steps (S(B) B ~ S_min B_noise, fixed examples).
  s1 = steps.steps_from_noise_scale(10, 1000, 1e6)
  s2 = steps.steps_from_noise_scale(20, 1000, 1e6)
  assert s1 / s2 == pytest.approx(2.0, rel=1e-4)


def test_fit_epochs_recovers_parameters():
  e_min, b_noise = 50.0, 1e5
  pts = [(b, e_min * (1 + b / b_noise)) for b in (1e3, 1e4, 5e4, 1e5)]
  got = steps.fit_epochs(pts, 1.0)
  assert got[0] == pytest.approx(e_min) and got[1] == pytest.approx(b_noise)


def test_pipeline_bubble():
  assert model_parallel.pipeline_bubble(4, 8) == pytest.approx(3 / 11)
  assert model_parallel.pipeline_bubble(1, 5) == 0.0
  assert model_parallel.pipeline_bubble(8, 1) == pytest.approx(7 / 8)


def test_batch1_chips_at_half_efficiency():
  # Free communication: tensor parallelism runs out only at max_ways; pipelining one
  # example halves efficiency per doubling, so it adds 1 stage at target 0.5.
  got = model_parallel.batch1_chips(1.0, 128, 1024, 24, math.inf, 0.0, max_ways=64)
  assert got["tensor_parallel"] == 64 and got["pipeline_stages"] == 2
  assert got["efficiency"] == pytest.approx(0.5)
  slow = model_parallel.batch1_chips(1e-3, 128, 1024, 24, 1e6, 1e-3)
  assert slow["tensor_parallel"] == 1


def test_stragglers():
  assert stragglers.straggler_wait_s(1.0, 0.1, 1) == 0.0
  waits = [stragglers.straggler_wait_s(1.0, 0.1, n) for n in (2, 16, 1024)]
  assert waits == sorted(waits) and waits[0] > 0
  # E[max of 2 standard normals] = 1/sqrt(pi); of 3: 3 / (2 sqrt(pi)).
  assert stragglers.expected_max_std_normal(2) == pytest.approx(1 / math.sqrt(math.pi))
  assert stragglers.expected_max_std_normal(3) == pytest.approx(1.5 / math.sqrt(math.pi))


# --- the planner's limits ------------------------------------------------------------

def _measured_workload(b_noise=1e9, cv=0.0):
  m = workloads.Measured(examples_per_sec=1000.0, batch=500.0, step_cv=cv, mfu=0.5,
                         peak_flops=1e11)
  return workloads.Workload(
      name="toy", unit="token", flops_per_example=5e7, params=1e6, precision="fp32",
      family="transformer", measured=m,
      step_model=steps.StepModel(0.0, s_min=100.0, b_noise=b_noise))


def test_one_chip_equals_the_measured_step():
  w = _measured_workload(cv=0.2)
  m = hardware.local_machine(1e11, hardware.link("loopback"))
  r = planner.plan(w, m, 1, 500.0)
  assert r["step_time_s"] == pytest.approx(500.0 / 1000.0)
  assert r["communication_s"] == 0 and r["straggler_s"] == 0
  assert r["scaling_efficiency"] == pytest.approx(1.0)


def test_infinite_bandwidth_leaves_compute():
  w = _measured_workload()
  inf = hardware.Link("inf", math.inf, 0.0, "test")
  m = hardware.local_machine(1e11, inf)
  r = planner.plan(w, m, 64, 64 * 500.0)
  assert r["step_time_s"] == pytest.approx(r["compute_s"])
  assert r["scaling_efficiency"] == pytest.approx(1.0)


def test_more_bandwidth_never_slower_and_more_chips_faster_below_b_noise():
  w = workloads.reference("resnet50_imagenet")
  slow = planner.plan(w, hardware.machine("v100", "ethernet_10g"), 256, 8192)
  fast = planner.plan(w, hardware.machine("v100", "ib_hdr"), 256, 8192)
  assert fast["time_to_train_s"] <= slow["time_to_train_s"]
  rows = scaling.sweep(_measured_workload(), hardware.local_machine(
      1e11, hardware.Link("inf", math.inf, 0.0, "t")), per_chip_batch=500.0, max_chips=64)
  times = [r["time_to_train_s"] for r in rows]
  assert times == sorted(times, reverse=True)
  assert times[0] / times[-1] == pytest.approx(64, rel=1e-3)  # B << B_noise: perfect


def test_critical_batch_stops_weak_scaling():
  w = _measured_workload(b_noise=4000.0)
  m = hardware.local_machine(1e11, hardware.Link("inf", math.inf, 0.0, "t"))
  stop = scaling.stop_point(scaling.sweep(w, m, per_chip_batch=500.0, max_chips=1024))
  assert stop["reason"].startswith("critical batch")
  assert 4000 <= stop["global_batch"] * 2 <= 4 * 4000


def test_async_pays_for_staleness_and_sync_for_stragglers():
  w = dataclasses.replace(_measured_workload(cv=0.5))
  m = hardware.local_machine(1e11, hardware.Link("inf", math.inf, 0.0, "t"))
  opt = planner.Options(strategy="async", staleness_cost=0.0)
  a = planner.plan(w, m, 8, 4000.0, opt)
  assert a["staleness"] == 7 and a["straggler_s"] == 0
  s = planner.plan(w, m, 8, 4000.0)
  assert s["straggler_s"] > 0
  costly = planner.plan(w, m, 8, 4000.0, planner.Options(strategy="async"))
  assert costly["steps"] == pytest.approx(a["steps"] * (1 + 0.1 * 7))


def test_bad_library_inputs_name_the_thing():
  w = workloads.reference("resnet50_imagenet")
  m = hardware.machine("v100")
  with pytest.raises(UserError, match="chips"):
    planner.plan(w, m, -4, 1024)
  with pytest.raises(UserError, match="per-chip batch"):
    planner.plan(w, m, 2048, 1024)
  with pytest.raises(UserError, match="hardware 'v10'"):
    hardware.machine("v10")
  with pytest.raises(UserError, match="interconnect"):
    hardware.machine("v100", "carrier_pigeon")


# --- MFU saturating with per-chip work ---------------------------------------------

def test_saturating_mfu_hand_computed_and_limits():
  f = planner.saturating_mfu
  assert f(0.4, 1e11, 1e11) == pytest.approx(0.2)          # w = w_half: half of MFU_max
  assert f(0.4, 3e11, 1e11) == pytest.approx(0.3)          # 0.4 x 3 / 4
  assert f(0.4, 1e20, 1e11) == pytest.approx(0.4, rel=1e-6)  # large w: MFU_max
  assert f(0.4, 1e3, 1e11) == pytest.approx(0.4 * 1e3 / 1e11, rel=1e-6)  # small w: linear
  assert f(0.4, 1e3, 0.0) == f(0.4, 1e3, None) == 0.4      # switched off
  ws = [1e9, 1e10, 1e11, 1e12, 1e13]
  assert all(f(0.4, a, 1e11) < f(0.4, b, 1e11) for a, b in zip(ws, ws[1:]))
  assert calibrate.max_mfu(f(0.4, 3e11, 1e11), 3e11, 1e11) == pytest.approx(0.4)
  with pytest.raises(ValueError):
    f(0.4, 0.0, 1e11)


def test_saturation_is_a_fixed_cost_per_step():
  # compute = w / (peak x MFU_max x w / (w + w_half)) = w / (peak MFU_max) + w_half / (peak MFU_max)
  w, m = workloads.RESNET50, hardware.machine("tpu_v3")
  peak = hardware.peak(m.system, w.precision)
  table = {("tpu_v3", "cnn"): 0.4, "half_work": 1e12}
  for per_chip in (32, 256):
    p = planner.plan(w, m, 16, 16 * per_chip, planner.Options(epochs=1), table)
    assert p["compute_s"] == pytest.approx(
        per_chip * w.flops_per_example / (peak * 0.4) + 1e12 / (peak * 0.4))
  flat = planner.plan(w, m, 16, 16 * 32, planner.Options(epochs=1, mfu=0.4))
  assert flat["compute_s"] == pytest.approx(32 * w.flops_per_example / (peak * 0.4))


def test_table_mfu_falls_back_to_the_family_before_all_records():
  t = {("v100", "cnn"): 0.2, "v100": 0.25, ("*", "cnn"): 0.3, ("*", "transformer"): 0.35,
       "*": 0.33, "half_work": 0.0}
  assert planner.table_mfu(t, "v100", "cnn") == (0.2, "accelerator+family")
  assert planner.table_mfu(t, "v100", "transformer") == (0.25, "accelerator")
  assert planner.table_mfu(t, "a100", "transformer") == (0.35, "family")
  assert planner.table_mfu(t, "a100", "rnn") == (0.33, "all records")
  assert planner.table_mfu({}, "a100", "cnn") == (None, "")



def test_table_mfu_takes_the_predecessor_before_the_family():
  t = {("v100", "cnn"): 0.2, ("v100", "transformer"): 0.26, ("tpu_v3", "cnn"): 0.38,
       ("*", "cnn"): 0.3, ("*", "transformer"): 0.35, "*": 0.33, "half_work": 0.0}
  assert planner.table_mfu(t, "a100", "cnn") == (0.2, "predecessor v100")
  assert planner.table_mfu(t, "a100", "transformer") == (0.26, "predecessor v100")
  # Up the line: A100 40 GB -> A100 -> V100; H100 -> A100 -> V100; TPU v4 -> TPU v3.
  assert planner.table_mfu(t, "a100_40gb", "cnn") == (0.2, "predecessor v100")
  assert planner.table_mfu(t, "h100", "cnn") == (0.2, "predecessor v100")
  assert planner.table_mfu(t, "tpu_v4", "cnn") == (0.38, "predecessor tpu_v3")
  # Only the predecessor's own family: otherwise the family fallback as before.
  assert planner.table_mfu(t, "tpu_v4", "transformer") == (0.35, "family")
  assert planner.table_mfu(t, "knl", "cnn") == (0.3, "family")
  assert hardware.accelerator("a100_40gb").hbm_bandwidth < \
      hardware.accelerator("a100").hbm_bandwidth

def _fake_record(rid, chips, batch):
  return records.Record(rid, "calibration", "made up", "resnet50_imagenet", "", "",
                        "tpu_v3", chips, "tpu_v3_ici", "bf16", "fp32", batch, 1.0, None,
                        100.0, "", "")


def test_fit_half_work_recovers_it_from_records_of_one_group():
  half = 10 ** 11.5                       # a point of the fit's grid
  recs = [_fake_record("a", 16, 16 * 32), _fake_record("b", 16, 16 * 256),
          _fake_record("c", 64, 64 * 64)]
  implied = {r.id: planner.saturating_mfu(0.4, calibrate.per_chip_work(r), half)
             for r in recs}
  assert calibrate.fit_half_work(recs, implied) == pytest.approx(half)
  table = calibrate.mfu_table(recs, implied)
  assert table["half_work"] == pytest.approx(half)
  assert table[("tpu_v3", "cnn")] == pytest.approx(0.4)
  # One per-chip work only: nothing to separate, the flat MFU (w_half = 0) fits exactly.
  same = [_fake_record("a", 16, 512), _fake_record("b", 64, 2048)]
  assert calibrate.fit_half_work(same, {"a": 0.3, "b": 0.3}) == 0.0


# --- data tables ---------------------------------------------------------------------

def test_every_hardware_entry_has_a_source():
  for table in (hardware.ACCELERATORS, hardware.LINKS, hardware.SYSTEMS):
    for name, entry in table.items():
      assert entry.source, name
  for s in hardware.SYSTEMS.values():
    hardware.machine(s.name)  # every link resolves


def test_records_table_is_complete_and_calibration_round_trips():
  recs = records.load()
  scored = [r for r in recs if r.scored]
  assert len([r for r in scored if r.role == "calibration"]) >= 10
  for r in recs:
    assert r.source and r.chips > 0 and r.reported_s > 0
    hardware.system(r.system)
    workloads.reference(r.workload)
  r = next(x for x in scored if x.id == "goyal17_256gpu")
  mfu = calibrate.implied_mfu(r)
  assert r.predict(mfu)["time_to_train_s"] == pytest.approx(r.reported_s, rel=1e-6)


# --- the CLI -------------------------------------------------------------------------

def _plan(*args):
  return subprocess.run([os.path.join(BIN, "onemodel-plan"), *args], capture_output=True,
                        text=True, timeout=120)


def _one_line_error(p, *words):
  assert p.returncode == 1, p.stderr[-2000:]
  lines = [l for l in p.stderr.splitlines() if l.startswith("onemodel-plan: error:")]
  assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
  for word in words:
    assert word in lines[0], lines[0]


def test_cli_json_has_the_interface_keys():
  p = _plan("--workload=resnet50_imagenet", "--hardware=tpu_v3", "--chips=64",
            "--global_batch=8192", "--format=json")
  assert p.returncode == 0, p.stderr[-2000:]
  out = json.loads(p.stdout)
  for k in ("time_to_train_s", "step_time_s", "compute_s", "communication_s",
            "straggler_s", "throughput_per_sec", "scaling_efficiency", "steps",
            "assumptions"):
    assert k in out, k
  assert out["step_time_s"] == pytest.approx(
      out["compute_s"] + out["optimizer_update_s"] + out["communication_s"] +
      out["straggler_s"])
  assert isinstance(out["assumptions"], list) and out["assumptions"]


def test_cli_list():
  p = _plan("--list")
  assert p.returncode == 0 and "tpu_v3" in p.stdout and "ib_edr" in p.stdout
  assert "resnet50_imagenet" in p.stdout


@pytest.mark.parametrize("args,words", [
    (["--workload=resnet50_imagenet", "--hardware=tpu_v9", "--chips=8",
      "--global_batch=1024"], ["unknown hardware", "tpu_v9"]),
    (["--workload=resnet50_imagenet", "--hardware=v100", "--chips=-8",
      "--global_batch=1024"], ["--chips", "-8"]),
    (["--workload=gpt5", "--hardware=v100", "--chips=8", "--global_batch=1024"],
     ["unknown workload", "gpt5"]),
    (["--workload=resnet50_imagenet", "--hardware=v100", "--chips=8",
      "--global_batch=1024", "--interconnect=smoke_signals"], ["interconnect"]),
])
def test_cli_bad_input_is_one_line(args, words):
  _one_line_error(_plan(*args), *words)


def test_cli_run_dir_without_measurements(tmp_path):
  run = tmp_path / "run"
  run.mkdir()
  (run / "operative_config.gin").write_text("TrainConfig.train_steps = 100\n")
  _one_line_error(_plan(f"--workload={run}", "--hardware=tpu_v3", "--chips=8"),
                  "lacks the measurement", "tokens_per_sec")
  _one_line_error(_plan(f"--workload={tmp_path}", "--hardware=tpu_v3", "--chips=8"),
                  "not a training run directory")

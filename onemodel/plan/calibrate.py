"""Calibration: what the planner fits on published records is the achieved fraction of
peak FLOP/s (MFU) of an accelerator on a workload family, as MFU_max per (accelerator,
family) and one half-saturation work w_half shared by all (planner.saturating_mfu: MFU =
MFU_max x w / (w + w_half), w = FLOPs per chip per step). Everything else (FLOPs, bytes,
bandwidths, epochs) is read from sources.

A record's implied MFU is the MFU at which the planner reproduces its reported time
(found by bisection: predicted time falls monotonically as MFU rises); for a given
w_half its MFU_max is implied x (w + w_half) / w. w_half is the value that makes the
records' MFU_max most alike within each (accelerator, family): least squares on
log MFU_max about the group's geometric mean (a log grid, 1e9 to 1e14 FLOPs). It is one
number in FLOPs per chip per step, shared across accelerators and families: the per-chip
work varies within a group only for V100 and TPU v3, and their CNN records alone give
similar values (7.1e11 and 4.8e11 FLOPs; as seconds per step, 17.5 and 9.8 ms, so FLOPs
transfer across hardware at least as well). The MFU table is the geometric mean of MFU_max per
(accelerator, family), with per-accelerator, per-family and global fallbacks
(planner.table_mfu). An accelerator with no record first takes its calibrated
predecessor's MFU_max on the same family (A100 -> V100, TPU v4 -> TPU v3; 2026-12-06,
see planner.table_mfu: at equal peak and bandwidth V100 and TPU v3 differ 0.27 / 0.38 on
CNNs, so the chip and its vendor's software, not the family, set the fraction of peak;
no calibration accelerator has a calibrated predecessor, so leave-one-out cannot test
this step). The per-family fallback (for an accelerator with neither) was
chosen by predicting each calibration accelerator's records from the other accelerators'
records: median error 26% with the family's MFU_max against 32% with the mean over all
records (17% against 22% with a flat MFU; note that w_half makes this
leave-one-accelerator-out error worse, 17% -> 26%: without TPU v3's records w_half is
fitted on V100's alone, whose Transformer slows far more at small per-chip batches). A record the planner cannot reproduce even at MFU 1 (its implied MFU
hits the cap: something the model lacks made it faster) carries no MFU information and
is left out of the fit, and no w_half may push a record's MFU_max to the cap.
Leave-one-out refits the table and w_half without the record it predicts; validation
records are predicted with the table of all calibration records.
"""

import math
import statistics
from typing import Dict, List, Optional, Tuple

from onemodel.plan import hardware, planner
from onemodel.plan.records import Record

MFU_CAP = 1.0


def implied_mfu(rec: Record) -> float:
  lo, hi = 1e-4, MFU_CAP
  if rec.predict(hi)["time_to_train_s"] > rec.reported_s:
    return hi  # faster than the planner allows even at peak: report the cap
  for _ in range(60):
    mid = math.sqrt(lo * hi)
    if rec.predict(mid)["time_to_train_s"] > rec.reported_s:
      lo = mid
    else:
      hi = mid
  return math.sqrt(lo * hi)


def _key(rec: Record) -> Tuple[str, str]:
  return (hardware.system(rec.system).accelerator, rec.workload_obj().family)


def per_chip_work(rec: Record) -> float:
  """Training FLOPs one chip does per step: per-chip batch x FLOPs per example."""
  return rec.global_batch / rec.chips * rec.workload_obj().flops_per_example


def max_mfu(implied: float, work: float, half_work: float) -> float:
  """The MFU_max at which planner.saturating_mfu gives `implied` at `work`."""
  return implied * (work + half_work) / work


HALF_WORK_GRID = [0.0] + [10 ** (9 + k / 100) for k in range(501)]


def _spread(cal: List[Record], implied: Dict[str, float], half_work: float):
  """Sum over (accelerator, family) groups of squared deviations of log MFU_max from
  the group mean; None if this half_work pushes a record's MFU_max to the cap."""
  groups = {}
  for r in cal:
    m = max_mfu(implied[r.id], per_chip_work(r), half_work)
    if m >= MFU_CAP:
      return None
    groups.setdefault(_key(r), []).append(math.log(m))
  return sum(sum((x - sum(xs) / len(xs)) ** 2 for x in xs) for xs in groups.values())


def fit_half_work(cal: List[Record], implied: Dict[str, float]) -> float:
  """The w_half (FLOPs per chip per step) that makes MFU_max most alike within each
  (accelerator, family) of the (uncapped) calibration records."""
  best = None
  for h in HALF_WORK_GRID:
    s = _spread(cal, implied, h)
    if s is not None and (best is None or s < best[0] - 1e-12):
      best = (s, h)
  return best[1] if best else 0.0


def _gmean(xs):
  return math.exp(sum(math.log(x) for x in xs) / len(xs))


def mfu_table(recs: List[Record], implied: Optional[Dict[str, float]] = None,
              half_work: Optional[float] = None) -> dict:
  """{(accelerator, family): MFU_max, accelerator: MFU_max, ('*', family): MFU_max,
  '*': MFU_max, 'half_work': w_half} from calibration records (w_half fitted unless
  given; half_work=0 gives the flat MFU of each record, as before w_half)."""
  cal = [r for r in recs if r.role == "calibration" and r.scored]
  implied = implied or {r.id: implied_mfu(r) for r in cal}
  cal = [r for r in cal if implied[r.id] < MFU_CAP]
  if half_work is None:
    half_work = fit_half_work(cal, implied)
  table, groups = {"half_work": half_work}, {}
  for r in cal:
    m = max_mfu(implied[r.id], per_chip_work(r), half_work)
    acc, fam = _key(r)
    for k in ((acc, fam), acc, ("*", fam), "*"):
      groups.setdefault(k, []).append(m)
  for k, xs in groups.items():
    table[k] = _gmean(xs)
  return table


def lookup(table: dict, rec: Record) -> Tuple[float, str]:
  """(MFU_max, where from) for a record (planner.table_mfu)."""
  return planner.table_mfu(table, *_key(rec))


def leave_one_out(recs: List[Record], half_work: Optional[float] = None) -> List[dict]:
  """Predicts every scored record: calibration records with an MFU table (and w_half)
  fitted without them (leave-one-out), validation records with the table of all
  calibration records. half_work fixes w_half instead of fitting it (0: flat MFU)."""
  cal = [r for r in recs if r.role == "calibration" and r.scored]
  implied = {r.id: implied_mfu(r) for r in cal}
  full = mfu_table(cal, implied, half_work)
  rows = []
  for r in recs:
    if not r.scored:
      rows.append({"record": r, "predicted_s": None, "error": None, "implied_mfu": None,
                   "mfu_used": None, "mfu_max": None, "mfu_from": "not scored"})
      continue
    if r.role == "calibration":
      table = mfu_table([o for o in cal if o.id != r.id], implied, half_work)
    else:
      table = full
    mfu_max, where = lookup(table, r)
    mfu = planner.saturating_mfu(mfu_max, per_chip_work(r), table["half_work"])
    pred = r.predict(mfu)
    rows.append({"record": r, "predicted_s": pred["time_to_train_s"],
                 "error": pred["time_to_train_s"] / r.reported_s - 1.0,
                 "implied_mfu": implied.get(r.id), "mfu_used": mfu, "mfu_max": mfu_max,
                 "half_work": table["half_work"], "mfu_from": where, "plan": pred})
  return rows


def median_abs_error(rows, role: str = "calibration") -> float:
  errs = [abs(x["error"]) for x in rows
          if x["error"] is not None and x["record"].role == role]
  return statistics.median(errs) if errs else float("nan")


def fit_step_models(recs: List[Record]) -> dict:
  """The second calibrated quantity: E(B) = E_min (1 + B / B_noise) per workload, fitted
  on calibration records that ran *to a target* (MLPerf logs: the epochs at which the
  target was reached), not on papers that ran a chosen number of epochs. Returns
  {workload: StepModel} for workloads with two or more such batch sizes."""
  import dataclasses as dc
  from onemodel.plan import steps as steps_lib
  from onemodel.plan import workloads as workloads_lib
  pts = {}
  for r in recs:
    if r.role == "calibration" and r.epochs is not None and r.global_batch and \
        r.includes.startswith("run_start"):
      pts.setdefault(r.workload, []).append((r.global_batch, r.epochs))
  out = {}
  for name, p in pts.items():
    if len({b for b, _ in p}) < 2:
      continue
    w = workloads_lib.reference(name)
    e_min, b_noise = steps_lib.fit_epochs(p, w.step_model.dataset_size)
    if not math.isfinite(b_noise):
      continue
    d = w.step_model.dataset_size
    out[name] = dc.replace(w.step_model, epochs=None, s_min=e_min * d / b_noise,
                           b_noise=b_noise, note=f"E_min {e_min:.1f} epochs, fitted on "
                           f"{len(p)} MLPerf runs to target (calibration records)")
  return out

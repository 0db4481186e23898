"""Calibration: the one number the planner fits on published records is the achieved
fraction of peak FLOP/s (MFU) of an accelerator on a workload family. Everything else
(FLOPs, bytes, bandwidths, epochs) is read from sources.

A record's implied MFU is the MFU at which the planner reproduces its reported time
(found by bisection: predicted time falls monotonically as MFU rises). The MFU table is
the geometric mean of implied MFUs per (accelerator, family), with a per-accelerator and
then a global fallback. A record the planner cannot reproduce even at MFU 1 (its implied
MFU hits the cap: something the model lacks made it faster) carries no MFU information
and is left out of the fit. Leave-one-out refits the table without the record it
predicts; validation records are predicted with the table of all calibration records.
"""

import math
import statistics
from typing import Dict, List, Optional, Tuple

from onemodel.plan import hardware
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


def _gmean(xs):
  return math.exp(sum(math.log(x) for x in xs) / len(xs))


def mfu_table(recs: List[Record], implied: Optional[Dict[str, float]] = None) -> dict:
  """{(accelerator, family): mfu, accelerator: mfu, '*': mfu} from calibration records."""
  cal = [r for r in recs if r.role == "calibration" and r.scored]
  implied = implied or {r.id: implied_mfu(r) for r in cal}
  cal = [r for r in cal if implied[r.id] < MFU_CAP]
  table, by_acc, by_key = {}, {}, {}
  for r in cal:
    by_key.setdefault(_key(r), []).append(implied[r.id])
    by_acc.setdefault(_key(r)[0], []).append(implied[r.id])
  for k, xs in by_key.items():
    table[k] = _gmean(xs)
  for k, xs in by_acc.items():
    table[k] = _gmean(xs)
  if cal:
    table["*"] = _gmean([implied[r.id] for r in cal])
  return table


def lookup(table: dict, rec: Record) -> Tuple[float, str]:
  key = _key(rec)
  if key in table:
    return table[key], "accelerator+family"
  if key[0] in table:
    return table[key[0]], "accelerator"
  return table["*"], "all records"


def leave_one_out(recs: List[Record]) -> List[dict]:
  """Predicts every scored record: calibration records with an MFU table fitted without
  them (leave-one-out), validation records with the table of all calibration records."""
  cal = [r for r in recs if r.role == "calibration" and r.scored]
  implied = {r.id: implied_mfu(r) for r in cal}
  full = mfu_table(cal, implied)
  rows = []
  for r in recs:
    if not r.scored:
      rows.append({"record": r, "predicted_s": None, "error": None, "implied_mfu": None,
                   "mfu_used": None, "mfu_from": "not scored"})
      continue
    if r.role == "calibration":
      table = mfu_table([o for o in cal if o.id != r.id], implied)
    else:
      table = full
    mfu, where = lookup(table, r)
    pred = r.predict(mfu)
    rows.append({"record": r, "predicted_s": pred["time_to_train_s"],
                 "error": pred["time_to_train_s"] / r.reported_s - 1.0,
                 "implied_mfu": implied.get(r.id), "mfu_used": mfu, "mfu_from": where,
                 "plan": pred})
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

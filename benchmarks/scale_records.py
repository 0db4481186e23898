"""The planner against the published record: predicts every record of
onemodel/plan/records.csv and prints a markdown table with the error of each.

  python benchmarks/scale_records.py [--out=benchmarks/results/scale_records.md]

Calibration records are predicted leave-one-out (the MFU table is refitted without the
record predicted); validation records (later MLPerf rounds) are predicted with the table
fitted on all calibration records and were never fitted on. Prints the median absolute
error of each set, and of the validation records of each MLPerf round (v0.7, v1.0,
v1.1) apart.
"""

import argparse
import re
import statistics

from onemodel.plan import calibrate, records


def _fmt(s):
  return f"{s / 3600:.2f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 120 else \
      f"{s:.0f} s"


# Validation records by MLPerf round (record id prefix); "" is all of them.
VALIDATION_SETS = [("MLPerf v0.7 alone", "mlperf07_"), ("MLPerf v1.0 alone", "mlperf10_"),
                   ("MLPerf v0.7 + v1.0 (the earlier rounds)", ("mlperf07_", "mlperf10_")),
                   ("MLPerf v1.1 alone (the round of 2026-12-06)", "mlperf11_"),
                   ("all", "")]


def _validation_median(rows, prefix):
  errs = [abs(x["error"]) for x in rows if x["error"] is not None and
          x["record"].role == "validation" and x["record"].id.startswith(prefix)]
  return (statistics.median(errs) if errs else float("nan")), len(errs)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--out", default="")
  args = ap.parse_args()
  recs = records.load()
  rows = calibrate.leave_one_out(recs)
  cal = [r for r in recs if r.role == "calibration" and r.scored]
  table = calibrate.mfu_table(cal)
  fits = calibrate.fit_step_models(recs)
  out = ["| record | role | workload (dataset, target) | chips x system | global batch | epochs / steps | "
         "published | predicted | error | implied MFU | FLOPs a chip a step | MFU used = MFU_max x "
         "saturation (MFU_max from) | source |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for x in rows:
    r = x["record"]
    es = f"{r.epochs:g} ep" if r.epochs is not None else \
        f"{r.steps:g} steps" if r.steps is not None else "n/a"
    pred = _fmt(x["predicted_s"]) if x["predicted_s"] else "not predicted"
    err = f"{100 * x['error']:+.0f}%" if x["error"] is not None else "-"
    imp = f"{x['implied_mfu']:.3f}" if x["implied_mfu"] else "-"
    used = (f"{x['mfu_used']:.3f} = {x['mfu_max']:.3f} x {x['mfu_used'] / x['mfu_max']:.2f} "
            f"({x['mfu_from']})") if x["mfu_used"] else "-"
    work = f"{calibrate.per_chip_work(r):.3g}" if x["mfu_used"] else "-"
    batch = f"{r.global_batch:,.0f}" if r.global_batch else "n/a"
    out.append(f"| {r.id} | {r.role} | {r.workload} ({r.dataset}; {r.target}) | "
               f"{r.chips} x {r.system} "
               f"({r.interconnect}) | {batch} | {es} | {_fmt(r.reported_s)} | {pred} | "
               f"{err} | {imp} | {work} | {used} | {r.source} |")
  n_cal = sum(1 for x in rows if x["error"] is not None and x["record"].role == "calibration")
  out += ["",
          f"Median absolute error, calibration records, leave-one-out ({n_cal} records): "
          f"{100 * calibrate.median_abs_error(rows, 'calibration'):.1f}%"]
  for label, prefix in VALIDATION_SETS:
    med, n = _validation_median(rows, prefix)
    out.append(f"Median absolute error, validation records, {label} (never fitted; {n} "
               f"records): {100 * med:.1f}%")
  out += [
          "", "MFU table fitted on all calibration records: w_half (FLOPs a chip a step at "
          "which MFU is half its MFU_max) and the geometric means of MFU_max = implied MFU x "
          "(w + w_half) / w:", f"  w_half: {table['half_work']:.3g} FLOPs"]
  for k, v in sorted(table.items(), key=lambda kv: str(kv[0])):
    if k != "half_work":
      out.append(f"  {k}: {v:.3f}")
  flat = calibrate.leave_one_out(recs, half_work=0.0)
  out += ["", "The same without the saturation (w_half = 0: one flat MFU per (accelerator, "
          "family); the per-family fallback kept): median absolute error "
          f"{100 * calibrate.median_abs_error(flat, 'calibration'):.1f}% leave-one-out, "
          + ", ".join(f"{100 * _validation_median(flat, prefix)[0]:.1f}% on {label}"
                      for label, prefix in VALIDATION_SETS) + "."]
  out += ["", "Steps to target fitted on the MLPerf v0.6 runs to target, "
          "E(B) = E_min (1 + B / B_noise):"]
  for k, v in fits.items():
    out.append(f"  {k}: {v.describe()}")
  out += ["", "Throughput the logs report during training (no evaluation, no epochs "
          "involved) against the planner's, same leave-one-out MFU:", "",
          "| record | chips | logged examples/s | planner examples/s | error | planner step "
          "= compute + update + exposed comm (of total) + stragglers |", "|---|---|---|---|---|---|"]
  for x in rows:
    r, m = x["record"], re.match(r"log: ([\d,]+) ", x["record"].reported_scaling)
    if not m or x["predicted_s"] is None:
      continue
    got, p = float(m.group(1).replace(",", "")), x["plan"]
    out.append(f"| {r.id} | {r.chips} | {got:,.0f} | {p['throughput_per_sec']:,.0f} | "
               f"{100 * (p['throughput_per_sec'] / got - 1):+.0f}% | "
               f"{1e3 * p['step_time_s']:.1f} = {1e3 * p['compute_s']:.1f} + "
               f"{1e3 * p['optimizer_update_s']:.1f} + {1e3 * p['communication_s']:.1f} "
               f"({1e3 * p['communication_total_s']:.1f}) + {1e3 * p['straggler_s']:.1f} ms |")
  text = "\n".join(out)
  print(text)
  if args.out:
    with open(args.out, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  main()

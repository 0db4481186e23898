"""The workshop's questions for one workload measured here: time to its target on
1, 8, 64, 512 and 4096 chips of two hardware types, where it stops scaling, and whether
sync or async wins at each size.

  python benchmarks/scale_answers.py --workload=runs/multi30k_base [--hardware=tpu_v3,v100]

Weak scaling: each chip keeps the run's per-step batch, so the global batch grows with
the chips (the planner's S(B) decides how many steps that saves).
"""

import argparse
import dataclasses

from onemodel.plan import calibrate, hardware, planner, records, rundir, scaling, workloads


def _fmt(s):
  return f"{s / 3600:.2f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 120 else \
      f"{s:.2f} s" if s >= 1 else f"{s * 1e3:.0f} ms"


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--workload", required=True)
  ap.add_argument("--hardware", default="tpu_v3,v100")
  ap.add_argument("--chips", default="1,8,64,512,4096")
  ap.add_argument("--per_chip_batch", type=float, default=None)
  args = ap.parse_args()
  recs = records.load()
  table = calibrate.mfu_table(recs)
  fits = calibrate.fit_step_models(recs)
  if args.workload in workloads.REFERENCE:
    w = workloads.reference(args.workload)
    if w.name in fits:
      w = dataclasses.replace(w, step_model=fits[w.name])
  else:
    w = rundir.load(args.workload)
  b = args.per_chip_batch or (w.measured.batch if w.measured else None)
  print(f"{w.name}: {w.flops_per_example:.3g} FLOP per {w.unit}, {w.params:,.0f} "
        f"parameters; steps: {w.step_model.describe()}; {b:,.0f} {w.unit}s per chip")
  print("| hardware | chips | global batch | steps | sync: time | step = compute + update "
        "+ comm + stragglers | async: time | winner |")
  print("|---|---|---|---|---|---|---|---|")
  for hw in args.hardware.split(","):
    m = hardware.machine(hw)
    for n in (int(x) for x in args.chips.split(",")):
      s = planner.plan(w, m, n, b * n, planner.Options(), table)
      a = planner.plan(w, m, n, b * n, planner.Options(strategy="async"), table)
      win = "sync" if s["time_to_train_s"] <= a["time_to_train_s"] else "async"
      print(f"| {hw} | {n} | {b * n:,.0f} | {s['steps']:,.0f} | {_fmt(s['time_to_train_s'])}"
            f" | {1e3 * s['step_time_s']:.2f} = {1e3 * s['compute_s']:.2f} + "
            f"{1e3 * s['optimizer_update_s']:.2f} + {1e3 * s['communication_s']:.2f} + "
            f"{1e3 * s['straggler_s']:.2f} ms | {_fmt(a['time_to_train_s'])} | {win} |")
    lim = scaling.limits(w, m, 8, b * 8, planner.Options(), table)
    for k, v in lim.items():
      print(f"\n{hw}, {k.replace('_', ' ')}: stops paying past {v['chips']} chip(s) "
            f"(global batch {v['global_batch']:,.0f}): {v['reason']}")
    print(f"\n{hw}, batch size one: {scaling.batch1(w, m, None, table)['reason']}\n")


if __name__ == "__main__":
  main()

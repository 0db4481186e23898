"""The README's figure: time to target against chips for a run measured here (planned on
this machine and on a TPU v3 pod) and for the reference workloads, with the published
records and the planner's leave-one-out predictions of them on the same axes.

  python benchmarks/scale_plot.py --run=runs/multi30k_base --out=benchmarks/results/scale_plan.png
"""

import argparse
import dataclasses

from onemodel.plan import calibrate, hardware, planner, plot, records, rundir, scaling
from onemodel.plan import workloads


def curve(w, m, per_chip, table, strategy="sync", label="", ls="-", max_chips=4096):
  rows = scaling.sweep(w, m, per_chip_batch=per_chip, mfu_table=table, max_chips=max_chips,
                       opt=planner.Options(strategy=strategy))
  return {"label": label, "chips": [r["chips"] for r in rows],
          "time_s": [r["time_to_train_s"] for r in rows], "ls": ls}


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--run", required=True)
  ap.add_argument("--out", required=True)
  args = ap.parse_args()
  recs = records.load()
  table = calibrate.mfu_table(recs)
  fits = calibrate.fit_step_models(recs)
  run = rundir.load(args.run)
  b = run.measured.batch
  here = hardware.local_machine(run.measured.peak_flops or 0.0, hardware.link("loopback"))
  tpu = hardware.machine("tpu_v3")
  resnet = dataclasses.replace(workloads.RESNET50, step_model=fits["resnet50_imagenet"])
  tbig = dataclasses.replace(workloads.TRANSFORMER_BIG,
                             step_model=fits["transformer_big_wmt14"])
  curves = [
      curve(run, here, b, table, label=f"{run.name}: this machine, sync ({b:,.0f} tok/worker)",
            max_chips=8),
      curve(run, tpu, b, table, label=f"{run.name}: TPU v3, sync ({b:,.0f} tok/chip)"),
      curve(run, tpu, b, table, "async", f"{run.name}: TPU v3, async", "--"),
      curve(resnet, tpu, 32, table, label="resnet50_imagenet: TPU v3, sync (32 img/chip)"),
      curve(resnet, hardware.machine("v100"), 32, table,
            label="resnet50_imagenet: V100 DGX-1, sync (32 img/chip)"),
      curve(tbig, hardware.machine("v100"), 1280, table,
            label="transformer_big_wmt14: V100 DGX-1, sync (1280 tok/chip)"),
  ]
  pts = [(x["record"].id, x["record"].chips, x["record"].reported_s, x["predicted_s"],
          x["record"].workload) for x in calibrate.leave_one_out(recs)
         if x["predicted_s"] is not None]
  plot.plot(args.out, curves, pts,
            title="Time to target vs chips. Lines: the planner (weak scaling). Open markers: "
                  "published records;\nred: the planner's prediction of each record "
                  "(leave-one-out for calibration, blind for MLPerf v0.7)")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()

"""The planner against the localhost cluster of benchmarks/sync_vs_async.py.

  python benchmarks/sync_vs_async.py --num_workers=1 --output_root=OUT ...   # then
  python benchmarks/sync_vs_async.py --num_workers=2 --output_root=OUT ...
  python benchmarks/plan_localhost.py --log=LOG_OF_BOTH --output_root=OUT

The measured single "chip" is the 1-worker multi-worker run (one worker process, its
examples/s); the planner predicts the other three: 1-worker parameter-server, 2-worker
multi-worker (all-reduce over loopback) and 2-worker parameter-server. Two predictions
for 2 workers: 'independent chips' (what the planner assumes of real chips) and 'shared
cores' (the two workers share this machine's cores, so each runs at half the 1-worker
speed: an input the user supplies as --chip_examples_per_sec, not something fitted).
"""

import argparse
import re

from onemodel.plan import hardware, planner, rundir, steps, workloads


def parse(log):
  """{(mode, workers): steps/s} from sync_vs_async.py's printed tables."""
  out, workers = {}, None
  for line in open(log):
    m = re.search(r"per update, (\d+) workers", line)
    if m:
      workers = int(m.group(1))
    m = re.match(r"\| (sync|async) \| ([\d.]+) \| (\d+) \|", line)
    if m and workers:
      out[(m.group(1), workers)] = float(m.group(2))
  return out


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--log", required=True)
  ap.add_argument("--output_root", required=True)
  ap.add_argument("--batch_size", type=int, default=64)
  ap.add_argument("--steps", type=int, default=600)
  args = ap.parse_args()
  meas = parse(args.log)
  b = args.batch_size
  chip = meas[("sync", 1)] * b                      # examples/s of one worker process
  params = rundir.count_params(f"{args.output_root}/sync_1w")
  w = workloads.Workload(
      name="mnist tiny", unit="image", flops_per_example=1.0, params=params,
      precision="fp32", family="transformer",
      step_model=steps.StepModel(0.0, s_min=float(args.steps), b_noise=0.0),
      measured=workloads.Measured(examples_per_sec=chip, batch=b, step_cv=None, mfu=None,
                                  peak_flops=None))
  m = hardware.local_machine(0.0, hardware.link("loopback"))
  print(f"measured chip: 1-worker multi-worker run, {meas[('sync', 1)]:.2f} steps/s x {b} "
        f"= {chip:.0f} images/s; {params:,.0f} parameters ({4 * params / 1e6:.2f} MB fp32)")
  print("| configuration | measured steps/s | predicted (independent chips) | error | "
        "predicted (shared cores) | error |")
  print("|---|---|---|---|---|---|")
  # (mode, workers, global batch as the planner counts it)
  for mode, n in (("sync", 1), ("async", 1), ("sync", 2), ("async", 2)):
    gb = b if mode == "sync" else b * n             # async: each worker's update is b
    preds = []
    for speed in (chip, chip / n):
      opt = planner.Options(strategy=mode, steps=args.steps, chip_examples_per_sec=speed,
                            staleness_cost=0.0)
      r = planner.plan(w, m, n, gb, opt)
      preds.append(1.0 / r["step_time_s"] * (n if mode == "async" else 1))
    got = meas.get((mode, n))
    cells = [f"{p:.2f} | {100 * (p / got - 1):+.0f}%" if got else f"{p:.2f} | -"
             for p in preds]
    print(f"| {mode} {n} worker{'s' if n > 1 else ''} | "
          f"{got if got else float('nan'):.2f} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
  main()

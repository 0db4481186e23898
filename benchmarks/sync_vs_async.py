"""Sync vs async, one flag apart: the same mnist experiment on a localhost cluster of two
workers, once with MultiWorkerMirroredStrategy and once with parameter-server training.

  python benchmarks/sync_vs_async.py --manual_dir=../shared/data [--model=tiny] [--steps=600]
      [--num_workers=2]

Prints, for each: steps/s (median of the progress lines after the first), examples/s,
the test accuracy at the end, and for async the mean gradient staleness."""

import argparse
import json
import glob
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(mode, args):
  out = os.path.join(args.output_root, f"{mode}_{args.num_workers}w")
  subprocess.run(["rm", "-rf", out])
  launch = [os.path.join(os.path.dirname(sys.executable), "onemodel-launch"),
            f"--num_workers={args.num_workers}"] + (["--num_ps=1"] if mode == "async" else [])
  params = [f"TrainConfig.problem='mnist'", f"TrainConfig.train_steps={args.steps}",
            f"TrainConfig.batch_size={args.batch_size}", "TrainConfig.log_every_steps=50",
            "TrainConfig.steps_per_loop=10", "TrainConfig.checkpoint_every_steps=100000",
            "ImageConfig.patch_size=7", "learning_rate_schedule.warmup_steps=100"]
  cmd = launch + ["--", f"--gin_file={ROOT}/gin/models/{args.model}.gin",
                  *[f"--gin_param={p}" for p in params], f"--output_dir={out}",
                  f"--data_dir={args.data_dir}", f"--manual_dir={args.manual_dir}"]
  t0 = time.time()
  log = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout
  wall = time.time() - t0
  who = "chief 0" if mode == "async" else "worker 0"
  rates = [float(x) for x in re.findall(rf"\[{who}\] step \d+/\d+ \| loss \S+ \| (\S+) steps/s",
                                        log)]
  stale = [float(x) for x in re.findall(r"staleness (\S+)", log)]
  metrics = sorted(glob.glob(os.path.join(out, "metrics_test_step*.json")))
  acc = json.load(open(metrics[-1]))["metrics"]["accuracy"] if metrics else float("nan")
  rate = statistics.median(rates[1:]) if len(rates) > 1 else float("nan")
  return {"mode": mode, "steps_per_s": rate, "examples_per_s": rate * args.batch_size,
          "accuracy": acc, "staleness": statistics.mean(stale) if stale else 0.0,
          "wall_s": wall, "ok": bool(metrics)}


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--manual_dir", default=os.path.join(ROOT, "..", "shared", "data"))
  ap.add_argument("--data_dir", default=os.path.expanduser("~/onemodel_data/prepared"))
  ap.add_argument("--output_root", default=os.path.join(ROOT, "runs", "sync_vs_async"))
  ap.add_argument("--model", default="tiny")
  ap.add_argument("--steps", type=int, default=600)
  ap.add_argument("--batch_size", type=int, default=64)
  ap.add_argument("--num_workers", type=int, default=2)
  args = ap.parse_args()
  rows = [run(m, args) for m in ("sync", "async")]
  print(f"mnist, gin/models/{args.model}.gin, {args.steps} steps, batch {args.batch_size} "
        f"per update, {args.num_workers} workers on localhost ({os.cpu_count()} cores)")
  print("| mode | steps/s | examples/s | test accuracy | staleness | wall s |")
  print("|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['mode']} | {r['steps_per_s']:.2f} | {r['examples_per_s']:.0f} | "
          f"{r['accuracy']:.2f} | {r['staleness']:.2f} | {r['wall_s']:.0f} |")


if __name__ == "__main__":
  main()

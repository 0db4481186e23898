"""Quality bars of the core issue: each built-in problem trained alone at base size.

  python benchmarks/quality.py --manual_dir=../shared/data [--problems=mnist,fsdd]

Runs `onemodel-train --gin_file=gin/experiments/PROBLEM.gin` for each problem (each run
capped at 60 minutes wall), reads the final test metrics JSON, and writes
benchmarks/results/quality.md: metric, bar, pass/fail, steps, wall time, machine."""

import argparse
import glob
import json
import os
import platform
import subprocess
import sys
import time

import runlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# problem -> (metric, comparison, bar)
BARS = {
    "mnist": ("accuracy", ">=", 99.0),
    "fsdd": ("wer", "<=", 5.0),
    "multi30k_en_de": ("bleu", ">=", 25.0),
    "tinyshakespeare": ("loss_per_token", "<=", 1.9),
}


def run(problem, args):
  out = os.path.join(args.output_root, problem)
  cmd = [os.path.join(os.path.dirname(sys.executable), "onemodel-train"),
         f"--gin_file={runlib.base_recipe(problem)}",
         f"--output_dir={out}", f"--manual_dir={args.manual_dir}",
         f"--data_dir={args.data_dir}"] + [f"--gin_param={p}" for p in args.gin_param]
  log = os.path.join(args.output_root, f"{problem}.log")
  os.makedirs(args.output_root, exist_ok=True)
  t0 = time.time()
  with open(log, "w") as f:
    try:
      rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT,
                          timeout=args.timeout_minutes * 60).returncode
    except subprocess.TimeoutExpired:
      rc = "timeout"
  wall = time.time() - t0
  files = sorted(glob.glob(os.path.join(out, "metrics_*_step*.json")),
                 key=os.path.getmtime)
  result = json.load(open(files[-1])) if files else None
  return {"problem": problem, "rc": rc, "wall_s": wall, "result": result, "log": log,
          "command": " ".join(cmd)}


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--manual_dir", default=os.path.join(ROOT, "..", "shared", "data"))
  ap.add_argument("--data_dir", default=os.path.expanduser("~/onemodel_data/prepared"))
  ap.add_argument("--output_root", default=os.path.join(ROOT, "runs", "quality"))
  ap.add_argument("--problems", default=",".join(BARS))
  ap.add_argument("--gin_param", action="append", default=[])
  ap.add_argument("--timeout_minutes", type=float, default=60)
  args = ap.parse_args()
  rows = []
  for problem in args.problems.split(","):
    r = run(problem, args)
    metric, op, bar = BARS[problem]
    value = r["result"]["metrics"].get(metric) if r["result"] else None
    ok = value is not None and (value >= bar if op == ">=" else value <= bar)
    step = r["result"]["step"] if r["result"] else "-"
    split = r["result"]["split"] if r["result"] else "-"
    rows.append(f"| {problem} | {metric} ({split}) | "
                f"{'-' if value is None else f'{value:.3f}'} | {op} {bar} | "
                f"{'PASS' if ok else 'MISS'} | {step} | {r['wall_s'] / 60:.1f} | {r['rc']} |")
    print(rows[-1], flush=True)
  machine = f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, no GPU"
  table = ["| problem | metric | value | bar | result | steps | wall min | exit |",
           "|---|---|---|---|---|---|---|---|"] + rows
  text = (f"# Quality bars (gin/models/base.gin, one problem per run)\n\n"
          f"Machine: {machine}. Date: {time.strftime('%Y-%m-%d %H:%M')}.\n"
          f"Command: python benchmarks/quality.py --problems={args.problems}\n\n"
          + "\n".join(table) + "\n")
  os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
  name = "quality.md" if args.problems == ",".join(BARS) else \
      f"quality_{args.problems.replace(',', '_')}.md"
  with open(os.path.join(HERE, "results", name), "w") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  main()

"""The README's first command, measured: ONE small model on four problems at once
(gin/experiments/multimodel_quick.gin) against a single model per problem trained for
the same number of that problem's steps, with the same settings otherwise (its
`TrainConfig.per_problem` entry included).

  python benchmarks/first_run.py --manual_dir=../shared/data

Writes benchmarks/results/first_run.md: the joint run's per-problem table (as the
command prints it), each single run's metric, and the wall times. One seed each: this
shows what the first command reaches, not a comparison to publish (that is
benchmarks/joint_vs_single.py's job, with seeds and intervals)."""

import argparse
import os
import re
import time

import runlib
from runlib import RESULTS, ROOT

GIN = os.path.join(ROOT, "gin", "experiments", "multimodel_quick.gin")


def per_problem_settings(gin_file):
  """The recipe's `TrainConfig.per_problem` ({problem: {setting: value}})."""
  import gin
  from onemodel.cli import common
  common.parse_gin([gin_file], [], finalize=False)
  try:
    return dict(gin.query_parameter("TrainConfig.per_problem"))
  finally:
    gin.clear_config()


def joint_table(log_path):
  """{problem: (metric, value, its steps)} from the table a joint run prints last."""
  rows = {}
  with open(log_path) as f:
    for line in f:
      m = re.match(r"^(\w+)\s+(\w+)\s+([-\d.e+]+)\s+(\d+)\s*$", line)
      if m:
        rows[m.group(1)] = (m.group(2), float(m.group(3)), int(m.group(4)))
  return rows


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--manual_dir", default=os.path.join(ROOT, "..", "shared", "data"))
  ap.add_argument("--data_dir", default=os.path.expanduser("~/onemodel_data/prepared"))
  ap.add_argument("--output_root", default=os.path.join(ROOT, "runs", "first_run"))
  args = ap.parse_args()
  joint = runlib.train("joint", [GIN], [], args.output_root, args.manual_dir,
                       args.data_dir)
  table = joint_table(os.path.join(args.output_root, "joint.log"))
  if joint["rc"] or not table:
    raise SystemExit(f"the joint run failed (exit {joint['rc']}); see its log")
  singles, per_problem = {}, per_problem_settings(GIN)
  for problem, (metric, _, steps) in table.items():
    # The gin file's settings, one problem, that problem's share of the joint steps.
    own = {problem: per_problem[problem]} if problem in per_problem else {}
    run = runlib.train(f"single_{problem}", [GIN], [
        f"TrainConfig.problem = '{problem}'", f"TrainConfig.train_steps = {steps}",
        f"TrainConfig.checkpoint_every_steps = {steps}",
        "TrainConfig.eval_every_steps = 0", f"TrainConfig.per_problem = {own!r}"],
        args.output_root, args.manual_dir, args.data_dir)
    got = runlib.final_metrics(run["dir"]) or {}
    singles[problem] = (got.get(metric), run)
  rows = [f"| {p} | {metric} | {steps} | {value:.4g} | "
          f"{'-' if singles[p][0] is None else f'{singles[p][0]:.4g}'} | "
          f"{singles[p][1]['wall_s'] / 60:.1f} |"
          for p, (metric, value, steps) in table.items()]
  text = "\n".join([
      "# The first command: one model, four problems", "",
      f"Machine: {runlib.machine()}. Date: {time.strftime('%Y-%m-%d %H:%M')}.",
      "Command: `python benchmarks/first_run.py` (the joint run is the README's first "
      "command: `onemodel-train --gin_file=gin/experiments/multimodel_quick.gin`; each "
      "single run is the same gin file with one problem and that problem's steps). "
      "One seed each; test splits.", "",
      "| problem | metric | its steps | one model, four problems | single model, "
      "same steps | single wall min |", "|---|---|---|---|---|---|", *rows, "",
      f"Wall time of the joint run (start-up, data preparation where --data_dir does not "
      f"hold it yet, training and the four test evaluations): "
      f"{joint['wall_s'] / 60:.1f} min; of the four single runs together: "
      f"{sum(r['wall_s'] for _, r in singles.values()) / 60:.1f} min.", ""])
  os.makedirs(RESULTS, exist_ok=True)
  with open(os.path.join(RESULTS, "first_run.md"), "w") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  main()

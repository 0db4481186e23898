"""The MultiModel table: single-problem baselines vs one joint model, plus an ablation.

  python benchmarks/joint_vs_single.py --manual_dir=../shared/data \
      [--steps=mnist:500,fsdd:500,multi30k_en_de:1000] \
      [--ablation="BackboneConfig.ffn_dim=256"]

For each problem P with step budget S_P it trains a single-problem baseline
(gin/experiments/P.gin at S_P steps), then ONE joint model on the mixture of all of them
with fixed rates proportional to S_P for sum(S_P) steps (so each problem gets its own
budget, in expectation), then the same joint run with one part of the backbone changed by
gin (the ablation, as in MultiModel's Table 3). Same backbone size (gin/models/base.gin)
everywhere. Each problem's final test metric comes from its real scorer.

Writes to benchmarks/results/: joint_vs_single.md (table, commands, wall times, machine),
joint_vs_single.png (bar chart of each metric: single / joint / ablated) and
joint_vs_single_curves.png (per-problem training loss vs that problem's own steps)."""

import argparse
import os
import time

import runlib
from runlib import RESULTS, ROOT
METRIC = {"mnist": ("accuracy", "higher"), "fsdd": ("wer", "lower"),
          "multi30k_en_de": ("bleu", "higher"), "tinyshakespeare": ("loss_per_token", "lower")}
# Problem-specific settings of gin/experiments/*.gin that must survive in a joint run
# (one optimizer, one TrainConfig): per-problem batch shapes and label smoothing.
PER_PROBLEM = {"mnist": {"batch_size": 64}, "fsdd": {"batch_size": 32},
               "multi30k_en_de": {"batch_tokens": 2048, "label_smoothing": 0.1},
               "tinyshakespeare": {"batch_size": 32}}
JOINT_GIN = [  # the union of the experiments' adapter settings (each touches one adapter)
    "ImageConfig.patch_size = 8", "ImageConfig.stem = 'conv'", "ImageConfig.random_shift = 2",
    "SpeechConfig.freq_mask = 10", "SpeechConfig.time_mask = 10",
    "learning_rate_schedule.learning_rate = 1e-3", "learning_rate_schedule.warmup_steps = 500",
    "learning_rate_schedule.decay = 'cosine'"]


def loss_curve(run_dir, problem, joint):
  """(problem's own steps, training loss) from the run's TensorBoard events."""
  tag = f"loss/{problem}" if joint else "loss"
  frac_tag = f"steps_fraction/{problem}"
  got = runlib.scalars(run_dir, [tag, frac_tag])
  steps = sorted(got[tag])
  xs = [s * got[frac_tag].get(s, 1.0) if joint else s for s in steps]
  return xs, [got[tag][s] for s in steps]


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--manual_dir", default=os.path.join(ROOT, "..", "shared", "data"))
  ap.add_argument("--data_dir", default=os.path.expanduser("~/onemodel_data/prepared"))
  ap.add_argument("--output_root", default=os.path.join(ROOT, "runs", "joint_vs_single"))
  ap.add_argument("--steps", default="mnist:500,fsdd:500,multi30k_en_de:1000")
  ap.add_argument("--ablation", default="BackboneConfig.ffn_dim=256",
                  help="gin binding that changes one part of the backbone in the joint model")
  ap.add_argument("--smoke", action="store_true",
                  help="tiny model and 32 eval examples: checks the pipeline in minutes")
  ap.add_argument("--skip", default="", help="comma list of runs to reuse (single_P, joint, "
                  "ablated, and NAME_sS for extra seeds) when they already finished in "
                  "--output_root")
  ap.add_argument("--extra_seeds", default="", help="comma list of TrainConfig.seed values "
                  "to repeat --seed_runs with (seed 0 is the main run); the table then "
                  "shows the mean over seeds for those runs")
  ap.add_argument("--seed_runs", default="", help="comma list of runs repeated with "
                  "--extra_seeds (e.g. single_fsdd,joint)")
  args = ap.parse_args()
  budget = {p: int(n) for p, n in (kv.split(":") for kv in args.steps.split(","))}
  problems = list(budget)
  total = sum(budget.values())
  base = os.path.join(ROOT, "gin", "models", "base.gin")
  common = ["TrainConfig.log_every_steps = 50", "TrainConfig.eval_every_steps = 0"]
  if args.smoke:
    base = os.path.join(ROOT, "gin", "models", "tiny.gin")
    common += ["include 'models/tiny.gin'", "TrainConfig.eval_max_examples = 32",
               "TrainConfig.log_every_steps = 2", "ImageConfig.patch_size = 8"]
  skip = set(filter(None, args.skip.split(",")))
  extra_seeds = [int(x) for x in filter(None, args.extra_seeds.split(","))]
  seed_runs = set(filter(None, args.seed_runs.split(",")))
  runs, seeded = {}, {}  # seeded: run name -> its run names over seeds (main run first)

  def run(name, files, params):
    names = [name] + ([f"{name}_s{s}" for s in extra_seeds] if name in seed_runs else [])
    seeded[name] = names
    for n, s in zip(names, [0] + extra_seeds):
      extra = [f"TrainConfig.seed = {s}"] if s else []
      runs[n] = runlib.reused(n, args.output_root) if n in skip else runlib.train(
          n, files, params + extra, args.output_root, args.manual_dir, args.data_dir)

  def metric_of(name, problem, metric, joint):
    """Mean over the run's seeds (None if any seed has no metric); the per-seed values."""
    got = []
    for n in seeded.get(name, []):
      m = runlib.final_metrics(runs[n]["dir"], problem) if joint else \
          runlib.final_metrics(runs[n]["dir"])
      got.append(m.get(metric) if m else None)
    if not got or None in got:
      return None, got
    return sum(got) / len(got), got

  for p in problems:
    run(f"single_{p}", [os.path.join(ROOT, "gin", "experiments", f"{p}.gin")],
        common + [f"TrainConfig.train_steps = {budget[p]}",
                  f"TrainConfig.checkpoint_every_steps = {budget[p]}"])
  rates = "{" + ", ".join(f"'{p}': {budget[p]}" for p in problems) + "}"
  per_problem = "{" + ", ".join(f"'{p}': {PER_PROBLEM.get(p, {})!r}" for p in problems) + "}"
  joint = [f"joint/Mixture.name = 'joint'",
           f"joint/Mixture.problems = {problems!r}", f"joint/Mixture.rates = {rates}",
           "TrainConfig.problem = @joint/Mixture()", f"TrainConfig.train_steps = {total}",
           f"TrainConfig.checkpoint_every_steps = {total}",
           f"TrainConfig.per_problem = {per_problem}"] + JOINT_GIN + common
  run("joint", [base], joint)
  if args.ablation:
    run("ablated", [base], joint + [args.ablation.replace("=", " = ", 1)])

  rows, values, per_seed = [], {}, []
  for p in problems:
    metric, better = METRIC[p]
    vals = []
    for name, joint in ((f"single_{p}", False), ("joint", True), ("ablated", True)):
      mean, got = metric_of(name, p, metric, joint)
      vals.append(mean)
      if len(got) > 1:
        per_seed.append(f"- {p}, {name.split('_')[0]}: "
                        + ", ".join(f"seed {s}: {'-' if v is None else f'{v:.2f}'}"
                                    for s, v in zip([0] + extra_seeds, got))
                        + (f" (mean {mean:.2f})" if mean is not None else ""))
    values[p] = vals
    fmt = lambda v: "-" if v is None else f"{v:.2f}"
    delta = "-" if None in vals[:2] else f"{vals[1] - vals[0]:+.2f}"
    rows.append(f"| {p} | {metric} ({better} is better) | {budget[p]} | {fmt(vals[0])} | "
                f"{fmt(vals[1])} | {delta} | {fmt(vals[2])} | "
                f"{runs[f'single_{p}']['wall_s'] / 60:.1f} |")
  walls = (f"joint {runs['joint']['wall_s'] / 60:.1f} min"
           + (f", ablated {runs['ablated']['wall_s'] / 60:.1f} min" if "ablated" in runs else "")
           + f", singles {sum(runs[f'single_{p}']['wall_s'] for p in problems) / 60:.1f} min")
  machine = runlib.machine()
  text = "\n".join([
      "# Joint vs single-problem training (MultiModel's table, gin/models/base.gin)", "",
      f"Machine: {machine}. Date: {time.strftime('%Y-%m-%d %H:%M')}.",
      f"Command: python benchmarks/joint_vs_single.py --steps={args.steps} "
      f"--ablation=\"{args.ablation}\""
      + (f" --extra_seeds={args.extra_seeds} --seed_runs={args.seed_runs}"
         if extra_seeds else ""), "",
      f"Joint: one model, mixture rates proportional to the step budgets, {total} steps "
      f"(the largest baseline has {max(budget.values())}). Ablated: the joint run with "
      f"`{args.ablation}`.", "",
      "| problem | metric | steps | single | joint | joint - single | joint, ablated | "
      "single wall min |", "|---|---|---|---|---|---|---|---|", *rows, "",
      *((["Runs repeated with more seeds (TrainConfig.seed; the table shows the mean):"]
         + per_seed + [""]) if per_seed else []),
      f"Wall time: {walls}.", "",
      "Exit codes: " + ", ".join(f"{k} {v['rc']}" for k, v in runs.items()), ""])
  os.makedirs(RESULTS, exist_ok=True)
  with open(os.path.join(RESULTS, "joint_vs_single.md"), "w") as f:
    f.write(text)
  print(text)
  try:
    plot(problems, values, runs)
  except ImportError as e:
    print(f"no plots ({e}); pip install -e '.[bench]'")


def plot(problems, values, runs):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(problems), figsize=(4 * len(problems), 3.5))
  for ax, p in zip(axes, problems):
    labels = ["single", "joint", "ablated"]
    vals = [v if v is not None else 0 for v in values[p]]
    ax.bar(labels, vals, color=["#777777", "#1f77b4", "#ff7f0e"])
    for i, v in enumerate(values[p]):
      if v is not None:
        ax.text(i, v, f"{v:.2f}", ha="center", va="bottom")
    ax.set_title(f"{p}: {METRIC[p][0]} ({METRIC[p][1]} is better)")
  fig.tight_layout()
  fig.savefig(os.path.join(RESULTS, "joint_vs_single.png"), dpi=100)
  fig, axes = plt.subplots(1, len(problems), figsize=(4 * len(problems), 3.5))
  for ax, p in zip(axes, problems):
    for name, joint, style in ((f"single_{p}", False, "k-"), ("joint", True, "b-"),
                               ("ablated", True, "C1--")):
      if name in runs:
        xs, ys = loss_curve(runs[name]["dir"], p, joint)
        ax.plot(xs, ys, style, label=name.split("_")[0])
    ax.set_title(f"{p}: training loss")
    ax.set_xlabel(f"{p}'s own steps")
    ax.set_yscale("log")
    ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(RESULTS, "joint_vs_single_curves.png"), dpi=100)


if __name__ == "__main__":
  main()

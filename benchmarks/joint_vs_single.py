"""The MultiModel table (Kaiser et al. 2017, arXiv:1706.05137, Tables 2-3): single-problem
baselines vs one joint model, plus an ablation, with seeds and intervals.

  python benchmarks/joint_vs_single.py --manual_dir=../shared/data \
      [--steps=mnist:500,fsdd:800,multi30k_en_de:1300,sst2:1000] [--seeds=0,1,2] \
      [--model=base|small|tiny] [--ablation=BINDING] [--smoke] [--dry_run]

For each problem P with step budget S_P and each seed it trains a single-problem baseline
(gin/experiments/P.gin at S_P steps), ONE joint model on the mixture of all of them with
fixed rates proportional to S_P for sum(S_P) steps (so each problem gets its own budget,
in expectation), and the same joint run with one part of the backbone changed by gin (the
ablation, as in MultiModel's Table 3). Same backbone size everywhere: gin/models/MODEL.gin
(--model, default base; small and tiny exist so that the whole table fits a shorter budget).

Fair schedules (a 500-step run that warms up for 500 steps is a handicapped
baseline): every run, single or joint, warms up for WARMUP_FRACTION of its own steps, then
decays with its experiment file's decay to its experiment file's peak rate. The rule is
fixed before any run; nothing is tuned, on validation or test data.

Test numbers: each run's final evaluation on the test split (TrainConfig.final_eval_role),
read once at the end. Validation (eval_role 'eval') only for the learning curves.

Re-running the same command skips runs whose final test metrics exist and resumes the
others from their last checkpoint; it starts by printing the runs and a wall-time estimate.
Writes to benchmarks/results/: joint_vs_single.md (table, schedules, per-seed values,
commands, machine, wall times), joint_vs_single.json (the numbers), joint_vs_single.png
(bars, mean ± sd) and joint_vs_single_curves.png (validation metric vs each problem's own
steps). --smoke writes joint_vs_single_smoke.* instead. --plot_only redraws the PNGs from
the JSON (needs matplotlib, not TensorFlow)."""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time

import runlib
from runlib import RESULTS, ROOT

METRIC = {"mnist": ("accuracy", "higher"), "fsdd": ("wer", "lower"),
          "multi30k_en_de": ("bleu", "higher"), "sst2": ("accuracy", "higher"),
          "tinyshakespeare": ("loss_per_token", "lower")}
# Problem-specific settings of gin/experiments/*.gin that must survive in a joint run
# (one optimizer, one TrainConfig): per-problem batch shapes and label smoothing.
PER_PROBLEM = {"mnist": {"batch_size": 64}, "fsdd": {"batch_size": 32},
               "multi30k_en_de": {"batch_tokens": 2048, "label_smoothing": 0.1},
               "sst2": {"batch_size": 64, "label_smoothing": 0.1},
               "tinyshakespeare": {"batch_size": 16}}
JOINT_GIN = [  # the union of the experiments' adapter settings (each touches one adapter)
    "ImageConfig.patch_size = 8", "ImageConfig.stem = 'conv'",
    "ImageConfig.random_shift = 2",
    "SpeechConfig.freq_mask = 10", "SpeechConfig.time_mask = 10"]
# One optimizer for the joint model: the peak rate and decay that mnist, fsdd,
# multi30k_en_de and tinyshakespeare's experiment files share (sst2_base.gin alone uses
# 5e-4).
JOINT_LR, JOINT_DECAY = "1e-3", "cosine"
WARMUP_FRACTION = 0.05
DEFAULT_STEPS = "mnist:500,fsdd:800,multi30k_en_de:1300,sst2:1000"

# Wall-time estimate (stated defaults, not measured by this script). Seconds per training
# step of base.gin on a 2-core x86 VM: mnist from mnist.gin's 2.1 steps/s; fsdd,
# multi30k_en_de and tinyshakespeare from the 2026-11-24 runs of this benchmark and of
# quality.md (wall / steps, less ~1 min of start-up and the final evaluation); sst2 is a
# guess (short sentences, no decoding). A joint step costs the step of the problem drawn.
STEP_S = {"mnist": 0.55, "fsdd": 0.8, "multi30k_en_de": 1.27, "sst2": 0.35,
          "tinyshakespeare": 0.78}
# Seconds per evaluation of a split (mnist 40 s on 10000 test images, quality.md;
# multi30k greedy 46 s, decoding.md; the others guessed from their split sizes).
EVAL_S = {"mnist": 40, "fsdd": 15, "multi30k_en_de": 46, "sst2": 10, "tinyshakespeare": 30}
START_S = 60  # process start, data pipeline, tracing
SMOKE_STEP_S, SMOKE_EVAL_S, SMOKE_START_S = 0.05, 5, 40  # tiny.gin, 32 eval examples
# Other model sizes: STEP_S and EVAL_S times this factor (rough: tiny from
# results/first_run.md, ~0.03-0.05 s/step; small, ~1/6 of base's FLOPs, less efficient).
MODEL_COST = {"base": 1.0, "small": 0.3, "tiny": 0.08}
# The ablation by default shrinks the feed-forward width to a quarter of the model's.
ABLATION = {"base": "BackboneConfig.ffn_dim=256", "small": "BackboneConfig.ffn_dim=128",
            "tiny": "BackboneConfig.ffn_dim=16"}


# -- the plan ----------------------------------------------------------------------------

def experiment_setting(problem, binding, default=None):
  """A binding's value in gin/experiments/PROBLEM.gin (for the schedule table)."""
  with open(experiment_file(problem)) as f:
    m = re.search(rf"^{re.escape(binding)}\s*=\s*(.+)$", f.read(), re.M)
  return m.group(1).strip().strip("'\"") if m else default


def experiment_file(problem):
  return runlib.base_recipe(problem)


def warmup(steps, fraction):
  """The schedule rule: warm up over `fraction` of the run's own steps (at least 1)."""
  return max(1, round(fraction * steps))


def eval_every(steps, points, log_every):
  """Validation every steps/points steps, a multiple of log_every: the trainer logs
  steps_fraction/P at every log step, so each evaluation step has the problem's own
  step count (see `own_steps`)."""
  return max(log_every, round(steps / points / log_every) * log_every)


def plan(args):
  """[run spec]: name, kind (single/joint/ablated), seed, problems, steps, gin files and
  params, and the schedule for the table."""
  budget = {p: int(n) for p, n in (kv.split(":") for kv in args.steps.split(","))}
  unknown = sorted(set(budget) - set(METRIC))
  if unknown:
    sys.exit(f"--steps names {', '.join(unknown)}; known: {', '.join(METRIC)}")
  seeds = [int(s) for s in args.seeds.split(",")]
  log_every = 2 if args.smoke else 50
  common = [f"TrainConfig.log_every_steps = {log_every}", "TrainConfig.eval_role = 'eval'",
            "TrainConfig.final_eval_role = 'test'"]
  if args.model != "base":  # after the experiment file: its model is replaced
    # (tiny.gin's patch 7 is put back to the 8 that mnist.gin and the joint runs use)
    common += [f"include 'models/{args.model}.gin'", "ImageConfig.patch_size = 8"]
  if args.smoke:
    common += ["TrainConfig.eval_max_examples = 32"]

  def schedule(steps, lr, decay):
    every = eval_every(steps, args.curve_points, log_every)
    return every, [f"TrainConfig.train_steps = {steps}",
                   f"TrainConfig.eval_every_steps = {every}",
                   f"TrainConfig.checkpoint_every_steps = {every}",  # resumable mid-run
                   f"learning_rate_schedule.learning_rate = {lr}",
                   f"learning_rate_schedule.warmup_steps = "
                   f"{warmup(steps, args.warmup_fraction)}",
                   f"learning_rate_schedule.decay = '{decay}'"]

  specs = []
  for seed in seeds:
    for p in budget:
      lr = experiment_setting(p, "learning_rate_schedule.learning_rate", "1e-3")
      decay = experiment_setting(p, "learning_rate_schedule.decay", "cosine")
      every, sched = schedule(budget[p], lr, decay)
      specs.append(dict(name=f"single_{p}_s{seed}", kind="single", seed=seed, problems=[p],
                        steps=budget[p], eval_every=every, lr=lr, decay=decay,
                        files=[experiment_file(p)],
                        params=common + sched + [f"TrainConfig.seed = {seed}"]))
    total = sum(budget.values())
    every, sched = schedule(total, JOINT_LR, JOINT_DECAY)
    problems = list(budget)
    rates = "{" + ", ".join(f"'{p}': {budget[p]}" for p in problems) + "}"
    per_problem = "{" + ", ".join(f"'{p}': {PER_PROBLEM[p]!r}" for p in problems) + "}"
    joint = ["joint/Mixture.name = 'joint'", f"joint/Mixture.problems = {problems!r}",
             f"joint/Mixture.rates = {rates}", "TrainConfig.problem = @joint/Mixture()",
             f"TrainConfig.per_problem = {per_problem}"] + JOINT_GIN + common + sched + \
        [f"TrainConfig.seed = {seed}"]
    base = os.path.join(ROOT, "gin", "models", "base.gin")
    kinds = [("joint", [])] + ([("ablated", [args.ablation.replace("=", " = ", 1)])]
                               if args.ablation else [])
    for kind, extra in kinds:
      specs.append(dict(name=f"{kind}_s{seed}", kind=kind, seed=seed, problems=problems,
                        steps=total, eval_every=every, lr=JOINT_LR, decay=JOINT_DECAY,
                        files=[base], params=joint + extra))
  return budget, seeds, specs


# -- state of a run ----------------------------------------------------------------------

def finished(spec, output_root):
  """True when the run's final test metrics exist for every one of its problems."""
  run_dir = os.path.join(output_root, spec["name"])
  mixture = spec["kind"] != "single"
  return all(spec["steps"] in runlib.metrics_by_step(run_dir, "test", p, mixture)
             for p in spec["problems"])


def last_checkpoint(spec, output_root):
  """The step of the run's newest checkpoint (0: none): where a re-run resumes."""
  found = glob.glob(os.path.join(output_root, spec["name"], "checkpoints", "ckpt-*.index"))
  return max((int(re.search(r"ckpt-(\d+)", f).group(1)) for f in found), default=0)


def check_same(spec, output_root):
  """A run dir made by a different configuration (other --steps, rule, ...) must not be
  reused or resumed as if it were this one."""
  path = os.path.join(output_root, f"{spec['name']}.run.json")
  if not os.path.exists(path):
    return
  with open(path) as f:
    old = json.load(f)
  if "params" in old and (old["params"] != spec["params"]
                          or [os.path.abspath(x) for x in old["gin_files"]] !=
                          [os.path.abspath(x) for x in spec["files"]]):
    sys.exit(f"{spec['name']} in {output_root} was made with other settings than this "
             "command's; use another --output_root or delete that run")


# -- the wall-time estimate ---------------------------------------------------------------

def estimate(spec, budget, args, start_step):
  """Seconds still needed for a run from `start_step` (STEP_S / EVAL_S defaults)."""
  cost = MODEL_COST[args.model]
  step_s = {p: SMOKE_STEP_S if args.smoke else cost * STEP_S[p] for p in spec["problems"]}
  eval_s = {p: SMOKE_EVAL_S if args.smoke else cost * EVAL_S[p] for p in spec["problems"]}
  total = sum(budget[p] for p in spec["problems"])
  left = spec["steps"] - start_step
  per_step = sum(step_s[p] * budget[p] / total for p in spec["problems"])
  evals = left // spec["eval_every"] + 1  # periodic validation passes + the final test
  return (SMOKE_START_S if args.smoke else START_S) + left * per_step + \
      evals * sum(eval_s.values())


def announce(specs, budget, args):
  """Prints every run with its state and the estimate -> the estimate (s)."""
  print(f"{len(specs)} runs into {args.output_root}:")
  left = 0.0
  for spec in specs:
    if finished(spec, args.output_root):
      state, need = "done (final test metrics exist): skipped", 0.0
    else:
      at = last_checkpoint(spec, args.output_root)
      need = estimate(spec, budget, args, at)
      state = (f"resumes at step {at}" if at else "new") + f", ~{need / 60:.0f} min"
    left += need
    print(f"  {spec['name']:<28} {spec['steps']:>5} steps, warmup "
          f"{warmup(spec['steps'], args.warmup_fraction)}: {state}")
  basis = ("tiny.gin defaults" if args.smoke else
           "stated default per-step and per-evaluation seconds of base.gin on a 2-core "
           f"machine (STEP_S, EVAL_S) x {MODEL_COST[args.model]} for {args.model}.gin")
  full = sum(estimate(spec, budget, args, 0) for spec in specs)
  print(f"Estimated wall time still needed: {left / 3600:.1f} h (all {len(specs)} runs "
        f"from scratch: {full / 3600:.1f} h; {basis}; first-time data preparation not "
        "included)", flush=True)
  return left


# -- reading the results -----------------------------------------------------------------

def own_steps(run_dir, problem, steps):
  """{global step: the problem's own steps so far} of a joint run at `steps`.

  The mixture's draws are random, so a problem's own step count at global step N is
  N * steps_fraction/P, the fraction of all steps it received so far, which the trainer
  logs at every log step (exact counts, see hooks.MixtureHook); evaluation steps are
  log steps (eval_every)."""
  tag = f"steps_fraction/{problem}"
  frac = runlib.scalars(run_dir, [tag])[tag]
  return {n: round(n * frac[n]) for n in steps if n in frac}


def collect(specs, budget, seeds, output_root):
  """Final test metric per problem/kind/seed, validation curves, joint own steps."""
  values, curves, joint_steps = {}, {}, {}
  for spec in specs:
    run_dir = os.path.join(output_root, spec["name"])
    mixture = spec["kind"] != "single"
    for p in spec["problems"]:
      metric = METRIC[p][0]
      test = runlib.metrics_by_step(run_dir, "test", p, mixture).get(spec["steps"])
      values.setdefault(p, {}).setdefault(spec["kind"], {})[spec["seed"]] = \
          test.get(metric) if test else None
      val = runlib.metrics_by_step(run_dir, "eval", p, mixture)
      x = own_steps(run_dir, p, list(val) + [spec["steps"]]) if mixture else \
          {n: n for n in list(val) + [spec["steps"]]}
      curves.setdefault(p, {}).setdefault(spec["kind"], {})[spec["seed"]] = \
          [[x[n], val[n][metric]] for n in sorted(val) if n in x and metric in val[n]]
      if spec["kind"] == "joint" and spec["steps"] in x:
        joint_steps.setdefault(p, []).append(x[spec["steps"]])
  return values, curves, joint_steps


# -- the results file --------------------------------------------------------------------

def fmt(v):
  return "-" if v is None else f"{v:.2f}"


def cell(by_seed, seeds):
  """'mean ± sd (n)' over the seeds that have a value."""
  got = [by_seed.get(s) for s in seeds if by_seed.get(s) is not None]
  if not got:
    return "-"
  mean, sd = runlib.mean_sd(got)
  return f"{mean:.2f} ± {sd:.2f}" + ("" if len(got) == len(seeds) else f" (n={len(got)})")


def difference(a, b, seeds):
  """'mean [low, high]' of b - a paired by seed (seeds where both have a value)."""
  both = [s for s in seeds if a.get(s) is not None and b.get(s) is not None]
  if len(both) < 2:
    return "-"
  mean, low, high = runlib.paired_interval([a[s] for s in both], [b[s] for s in both])
  return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"


def report(args, budget, seeds, specs, values, joint_steps, records, estimate_s):
  kinds = ["single", "joint"] + (["ablated"] if args.ablation else [])
  rows = []
  for p in budget:
    v = {k: values.get(p, {}).get(k, {}) for k in kinds}
    own = joint_steps.get(p)
    own = f" ({sum(own) / len(own):.0f})" if own else ""
    row = [p, f"{METRIC[p][0]} ({METRIC[p][1]} is better)", f"{budget[p]}{own}",
           cell(v["single"], seeds), cell(v["joint"], seeds),
           difference(v["single"], v["joint"], seeds)]
    if args.ablation:
      row += [cell(v["ablated"], seeds), difference(v["joint"], v["ablated"], seeds)]
    rows.append("| " + " | ".join(row) + " |")
  head = ["problem", "metric", "steps (joint: mean own)", "single", "joint",
          "joint − single, 95% CI"]
  if args.ablation:
    head += ["joint, ablated", "ablated − joint, 95% CI"]
  per_seed = [f"| {p} | {k} | " + " | ".join(fmt(values.get(p, {}).get(k, {}).get(s))
                                               for s in seeds) + " |"
              for p in budget for k in kinds]
  sched = []
  for spec in specs:
    if spec["seed"] != seeds[0]:
      continue
    p = spec["problems"][0]
    other = "as gin/experiments/%s.gin" % p if spec["kind"] == "single" else \
        "per-problem batch/label smoothing of each experiment file; " + \
        ("`" + args.ablation + "`" if spec["kind"] == "ablated" else
         f"{args.model}.gin's dropout")
    sched.append(f"| {spec['kind']}{' ' + p if spec['kind'] == 'single' else ''} | "
                 f"{spec['steps']} | {warmup(spec['steps'], args.warmup_fraction)} | "
                 f"{spec['lr']} | {spec['decay']} | {spec['eval_every']} | {other} |")
  walls = [f"{r['name']} {r['wall_s'] / 60:.1f}" for r in records]
  total_wall = sum(r["wall_s"] for r in records if r["wall_s"] == r["wall_s"])
  command = command_line(args)
  return "\n".join([
      "# Joint vs single-problem training (MultiModel's table, "
      f"gin/models/{args.model}.gin)"
      + (" — SMOKE RUN: pipeline check, numbers mean nothing" if args.smoke else ""), "",
      f"Machine: {runlib.machine()}. Date: {time.strftime('%Y-%m-%d %H:%M')}.",
      f"Command (re-run it to resume; finished runs are skipped): `{command}`", "",
      f"Seeds: {', '.join(map(str, seeds))} (TrainConfig.seed: initialization, data order, "
      "augmentation and the mixture's draws). Joint: one model, mixture rates "
      f"proportional to the step budgets, {sum(budget.values())} steps."
      + (f" Ablated: the joint run with `{args.ablation}`." if args.ablation else ""), "",
      "Each cell: test metric, mean ± standard deviation over the seeds, from each run's "
      "final evaluation on the test split (read once, at the end). Differences: mean "
      "over seeds of the per-seed difference with its 95% t-interval "
      "(t_{0.975, n-1} · sd / √n), **paired by seed**: seed s of one column minus seed s "
      "of the other.",
      "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head), *rows, "",
      "## Schedules", "",
      f"Rule, fixed before any run: every run warms up linearly from 0 to its peak "
      f"rate over {100 * args.warmup_fraction:g}% of its own steps (rounded), then decays "
      "with its experiment file's decay (cosine: to 5% of the peak at its last step); the "
      "peak rate and all other settings of a single run are its gin/experiments file's "
      "(only the step count, warmup and evaluation cadence are overridden, the same way "
      "for every problem). The joint and ablated runs apply "
      f"the same rule to their {sum(budget.values())} steps, with the peak rate "
      f"{JOINT_LR} shared by the mnist, fsdd, multi30k_en_de and tinyshakespeare files "
      "(one optimizer; sst2_base.gin's 5e-4 and dropout 0.2 apply to its single run only). "
      "Nothing was tuned: no choice looked at test data, and validation data only gives "
      "the curves.", "",
      "| run | steps | warmup | peak lr | decay | validation every | other settings |",
      "|---|---|---|---|---|---|---|", *sched, "",
      "## Per-seed test values", "",
      "| problem | run | " + " | ".join(f"seed {s}" for s in seeds) + " |",
      "|---|---|" + "---|" * len(seeds), *per_seed, "",
      "## Learning curves", "",
      f"`{os.path.basename(out_name(args, '_curves.png'))}`: the validation metric "
      "(split 'eval') against each problem's own training steps; line = mean over seeds, "
      "band = min-max. A joint run's own steps at global step N are N × "
      "steps_fraction/P, the exact fraction of steps drawn for P so far, logged by the "
      "trainer at N (every evaluation step is a log step).", "",
      "## Wall time", "",
      f"Estimate printed at the start: {estimate_s / 3600:.1f} h still needed. "
      f"Measured (min, summed over attempts): {', '.join(walls)}; "
      f"total {total_wall / 3600:.2f} h.", "",
      "Exit codes: " + ", ".join(f"{r['name']} {r['rc']}" for r in records), "",
      "## Notes", "",
      "- tinyshakespeare has no test split: its 'test' is its validation split.",
      "- fsdd is scored on 300 test clips: 1 WER point = 3 clips.",
      "- In the joint model the problems with text targets share one SentencePiece "
      "vocabulary learned from all their texts (a text classifier keeps its own); single "
      "runs use their own.", ""])


def command_line(args):
  parts = ["python benchmarks/joint_vs_single.py", f"--steps={args.steps}",
           f"--seeds={args.seeds}", f"--model={args.model}",
           f"--ablation=\"{args.ablation}\""]
  if args.smoke:
    parts.append("--smoke")
  if args.warmup_fraction != WARMUP_FRACTION:
    parts.append(f"--warmup_fraction={args.warmup_fraction}")
  return " ".join(parts)


def out_name(args, suffix):
  name = "joint_vs_single" + ("_smoke" if args.smoke else
                               "" if args.model == "base" else f"_{args.model}")
  return os.path.join(RESULTS, name + suffix)


# -- plots -------------------------------------------------------------------------------

def plot(data, png, curves_png):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  problems, seeds = data["problems"], data["seeds"]
  colors = {"single": "#555555", "joint": "#1f77b4", "ablated": "#ff7f0e"}
  fig, axes = plt.subplots(1, len(problems), figsize=(4 * len(problems), 3.5),
                           squeeze=False)
  for ax, p in zip(axes[0], problems):
    kinds = [k for k in ("single", "joint", "ablated") if k in data["values"].get(p, {})]
    for i, k in enumerate(kinds):
      got = [v for v in data["values"][p][k].values() if v is not None]
      if got:
        mean, sd = runlib.mean_sd(got)
        ax.bar(i, mean, yerr=sd, color=colors[k], capsize=4)
        ax.plot([i] * len(got), got, "k.", ms=4)
        ax.text(i, mean, f"{mean:.2f}", ha="center", va="bottom")
    ax.set_xticks(range(len(kinds)), kinds)
    ax.set_title(f"{p}: test {METRIC[p][0]} ({METRIC[p][1]} better)", fontsize=9)
  fig.suptitle(f"mean ± sd over seeds {seeds}", fontsize=9)
  fig.tight_layout()
  fig.savefig(png, dpi=100)
  fig, axes = plt.subplots(1, len(problems), figsize=(4 * len(problems), 3.5),
                           squeeze=False)
  for ax, p in zip(axes[0], problems):
    for k, by_seed in data["curves"].get(p, {}).items():
      xs, lines = common_points(by_seed.values())
      if not xs:
        continue
      mean = [sum(l) / len(l) for l in lines]
      ax.plot(xs, mean, "-o", ms=3, color=colors[k], label=f"{k} (n={len(by_seed)})")
      ax.fill_between(xs, [min(l) for l in lines], [max(l) for l in lines],
                      color=colors[k], alpha=0.2)
    ax.set_title(f"{p}: validation {METRIC[p][0]}", fontsize=9)
    ax.set_xlabel(f"{p}'s own training steps")
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=8)
  fig.suptitle("mean over seeds, band = min-max", fontsize=9)
  fig.tight_layout()
  fig.savefig(curves_png, dpi=100)


def common_points(runs):
  """Seeds' curves -> (x, [values at x over seeds]). A joint run's own steps at the k-th
  evaluation differ a little between seeds (random draws): point k is averaged over
  seeds at the mean x."""
  runs = [r for r in runs if r]
  n = min((len(r) for r in runs), default=0)
  xs = [sum(r[i][0] for r in runs) / len(runs) for i in range(n)]
  return xs, [[r[i][1] for r in runs] for i in range(n)]


def try_plot(args, data):
  """Draws the PNGs here, else with --plot_python (matplotlib is an extra: `pip install
  -e '.[bench]'`); if neither works, says so (the table is written already)."""
  replot = [f"--plot_only={out_name(args, '.json')}", f"--model={args.model}"] + \
      (["--smoke"] if args.smoke else [])
  try:
    plot(data, out_name(args, ".png"), out_name(args, "_curves.png"))
    print(f"plots: {out_name(args, '.png')}, {out_name(args, '_curves.png')}")
    return
  except Exception as e:  # noqa: BLE001 (the table is written already; say why, go on)
    why = f"{type(e).__name__}: {e}"
  if args.plot_python and not args.plot_only:
    print(f"plotting here failed ({why}); trying {args.plot_python}", flush=True)
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.abspath(__file__))}
    if subprocess.run([args.plot_python, os.path.abspath(__file__), *replot],
                      env=env).returncode == 0:
      return
  print(f"NO PLOTS ({why}). The table is written. Draw them with a Python that has "
        f"matplotlib: PYTHONPATH={os.path.dirname(os.path.abspath(__file__))} python "
        f"{os.path.abspath(__file__)} {' '.join(replot)}")
  if args.plot_only:
    sys.exit(1)


# -- main --------------------------------------------------------------------------------

def parse_args():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--manual_dir", default=os.path.join(ROOT, "..", "shared", "data"))
  ap.add_argument("--data_dir", default=os.path.expanduser("~/onemodel_data/prepared"))
  ap.add_argument("--output_root", default="", help="default: runs/joint_vs_single_fair "
                  "(runs/joint_vs_single_smoke with --smoke)")
  ap.add_argument("--steps", default=DEFAULT_STEPS, help="PROBLEM:STEPS,...; problems: "
                  + ", ".join(METRIC))
  ap.add_argument("--seeds", default="0,1,2", help="TrainConfig.seed of every run")
  ap.add_argument("--model", default="base", choices=sorted(MODEL_COST),
                  help="gin/models/MODEL.gin for every run (--smoke: tiny)")
  ap.add_argument("--ablation", default=None,
                  help="gin binding that changes one part of the backbone in the joint "
                  "model ('' for none; default: a quarter of the model's ffn_dim, "
                  + ", ".join(f"{m}: {b}" for m, b in ABLATION.items()) + ")")
  ap.add_argument("--warmup_fraction", type=float, default=WARMUP_FRACTION)
  ap.add_argument("--curve_points", type=int, default=5, help="validation every "
                  "1/curve_points of each run (the end point is the test evaluation)")
  ap.add_argument("--smoke", action="store_true", help="tiny.gin, 32 eval examples: "
                  "checks the pipeline in minutes (writes joint_vs_single_smoke.*)")
  ap.add_argument("--dry_run", action="store_true", help="print the runs and the "
                  "estimate, train nothing")
  ap.add_argument("--plot_only", default="", help="a results JSON: redraw its PNGs")
  ap.add_argument("--plot_python", default=os.environ.get("ONEMODEL_PLOT_PYTHON", ""),
                  help="a Python with matplotlib to draw the PNGs with when this one "
                  "has none (default: $ONEMODEL_PLOT_PYTHON)")
  args = ap.parse_args()
  if args.smoke:
    args.model = "tiny"
  if args.ablation is None:
    args.ablation = ABLATION[args.model]
  args.output_root = args.output_root or os.path.join(
      ROOT, "runs", "joint_vs_single_smoke" if args.smoke else
      "joint_vs_single_fair" + ("" if args.model == "base" else f"_{args.model}"))
  if len(args.seeds.split(",")) < 2:
    sys.exit("--seeds: at least 2 seeds (3 for the real table): intervals need them")
  return args


def main():
  args = parse_args()
  if args.plot_only:
    with open(args.plot_only) as f:
      try_plot(args, json.load(f))
    return
  budget, seeds, specs = plan(args)
  for spec in specs:
    check_same(spec, args.output_root)
  estimate_s = announce(specs, budget, args)
  if args.dry_run:
    return
  records = []
  for spec in specs:
    if finished(spec, args.output_root):
      records.append(runlib.reused(spec["name"], args.output_root))
    else:
      records.append(runlib.train(spec["name"], spec["files"], spec["params"],
                                  args.output_root, args.manual_dir, args.data_dir))
  values, curves, joint_steps = collect(specs, budget, seeds, args.output_root)
  text = report(args, budget, seeds, specs, values, joint_steps, records, estimate_s)
  os.makedirs(RESULTS, exist_ok=True)
  with open(out_name(args, ".md"), "w") as f:
    f.write(text)
  data = {"problems": list(budget), "seeds": seeds, "steps": budget,
          "values": values, "curves": curves, "command": command_line(args)}
  with open(out_name(args, ".json"), "w") as f:
    json.dump(data, f, indent=1)
  print(text)
  try_plot(args, data)


if __name__ == "__main__":
  main()

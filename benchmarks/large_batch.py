"""The large-scale-training report on one problem: batch size and the scaling rule, LAMB
vs Adam at the largest batch, the measured gradient noise scale, dense vs MoE at equal
FLOPs per token, dense vs pruned.

  python benchmarks/large_batch.py --manual_dir=../shared/data \
      [--problem=fsdd] [--model=base] [--steps=2500] [--batch=32] [--smoke]

Runs (each `onemodel-train` on gin/experiments/PROBLEM.gin + gin/models/MODEL.gin; one
optimizer update consumes `grad_accum_steps` micro-batches of --batch; every run warms up
over the same number of examples, --warmup updates at k=1):
* base         k=1 for STEPS updates (also measures the noise scale with k=2 micro-batches
               of half the batch -- same examples per update)
* k2, k4       k micro-batches per update, STEPS / k updates, linear scaling rule with
               gradual warmup from the base rate (reference batch = --batch)
* k8, k8_sqrt, k8_norule, k8_lamb
               8 micro-batches per update for STEPS / 4 updates (the bar's allowance):
               linear rule, square-root rule, no rule, LAMB with the linear rule
* moe          Switch FFN (4 experts, top-1: the same FLOPs per token as dense), STEPS
* prune{50,75,90}  gradual magnitude pruning (Zhu & Gupta) to that sparsity, STEPS

Writes benchmarks/results/large_batch.md (final metric, updates to the target training
loss, wall time per run, the measured B_simple), large_batch.png (final metric per run)
and large_batch_steps.png (updates to target vs effective batch, B_simple marked)."""

import argparse
import json
import os
import time

import runlib
from runlib import RESULTS, ROOT

METRIC = {"fsdd": ("wer", "lower"), "mnist": ("accuracy", "higher"),
          "multi30k_en_de": ("bleu", "higher")}


def runs_for(steps, batch, warmup):
  """name -> (micro-batches per update k, optimizer updates, gin bindings).

  Every run warms up over the same number of *examples* (Goyal et al.: warmup in epochs),
  so `warmup // k` updates at k micro-batches. The 8x runs get steps // 4 updates: the
  bar's allowance ("8x the batch in at most 1/4 of the base's updates")."""
  def rule(kind):
    return [f"learning_rate_schedule.scale_rule = '{kind}'",
            f"learning_rate_schedule.reference_batch = {batch}",
            "learning_rate_schedule.warmup_start = 'base'"]

  def accum(k):
    return [f"TrainConfig.grad_accum_steps = {k}",
            f"learning_rate_schedule.warmup_steps = {max(warmup // k, 1)}"]

  same = [f"learning_rate_schedule.warmup_steps = {warmup}"]
  out = {"base": (1, steps, ["TrainConfig.grad_accum_steps = 2", "TrainConfig.noise_scale = True",
                             f"TrainConfig.batch_size = {batch // 2}"] + same)}
  for k in (2, 4):
    out[f"k{k}"] = (k, steps // k, accum(k) + rule("linear"))
  out["k8"] = (8, steps // 4, accum(8) + rule("linear"))
  out["k8_sqrt"] = (8, steps // 4, accum(8) + rule("sqrt"))
  out["k8_norule"] = (8, steps // 4, accum(8))
  out["k8_lamb"] = (8, steps // 4, accum(8) + ["optimizer.name = 'lamb'"] + rule("linear"))
  out["moe"] = (1, steps, same + ["BackboneConfig.ffn = 'moe'", "BackboneConfig.num_experts = 4",
                                  "BackboneConfig.expert_top_k = 1"])
  for s in (50, 75, 90):
    out[f"prune{s}"] = (1, steps, same + [
        f"PruningConfig.target_sparsity = {s / 100}",
        f"PruningConfig.begin_step = {steps // 10}",
        f"PruningConfig.end_step = {int(steps * 0.7)}",
        f"PruningConfig.frequency = {max(steps // 50, 1)}"])
  return out


def bars(points, metric, better, steps):
  """The issue's three bars, judged from the table (1 point of the metric)."""
  got = {name: value for name, _, value, _ in points}
  base = got.get("base")
  if base is None:
    return ["Bars: no base run."]
  sign = 1 if better == "higher" else -1

  def judge(name, slack, what):
    v = got.get(name)
    if v is None:
      return f"- {what}: {name} did not run or has no metric."
    loss = sign * (base - v)  # > 0: worse than base
    verdict = "met" if loss <= slack else "missed"
    return (f"- {what}: {name} {v:.2f} vs base {base:.2f} ({metric}; "
            f"{'worse' if loss > 0 else 'not worse'} by {abs(loss):.2f}) -> {verdict}")

  return ["Bars:",
          judge("k8", 1.0, f"8x batch, linear rule + warmup, {steps // 4} updates "
                f"(1/4 of {steps}), within 1 point"),
          judge("k8_sqrt", 1.0, f"8x batch, square-root rule + warmup, {steps // 4} "
                "updates, within 1 point"),
          judge("k8_lamb", 1.0, f"8x batch, LAMB, linear rule + warmup, {steps // 4} "
                "updates, within 1 point"),
          judge("moe", 0.0, "MoE at equal FLOPs per token no worse than dense"),
          judge("prune75", 1.0, "75% unstructured pruning costs at most 1 point"),
          "(k8_norule: the same 8x run at the base learning rate, for reference.)"]


def updates_to(run_dir, target):
  loss = runlib.scalars(run_dir, ["loss"])["loss"]
  hit = [s for s in sorted(loss) if loss[s] <= target]
  return hit[0] if hit else None


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--manual_dir", default=os.path.join(ROOT, "..", "shared", "data"))
  ap.add_argument("--data_dir", default=os.path.expanduser("~/onemodel_data/prepared"))
  ap.add_argument("--output_root", default=os.path.join(ROOT, "runs", "large_batch"))
  ap.add_argument("--problem", default="fsdd")
  ap.add_argument("--model", default="base")
  ap.add_argument("--steps", type=int, default=2500)
  ap.add_argument("--batch", type=int, default=32)
  ap.add_argument("--warmup", type=int, default=300,
                  help="warmup updates at the base batch (k micro-batches: warmup // k)")
  ap.add_argument("--only", default="", help="comma list of runs (default: all)")
  ap.add_argument("--skip", default="", help="comma list of finished runs to reuse")
  ap.add_argument("--smoke", action="store_true", help="tiny model, few steps, 32 eval examples")
  args = ap.parse_args()
  gin_files = [runlib.base_recipe(args.problem),
               os.path.join(ROOT, "gin", "models", f"{args.model}.gin")]
  common = [f"TrainConfig.batch_size = {args.batch}", "TrainConfig.log_every_steps = 10",
            "TrainConfig.checkpoint_every_steps = 100000", "TrainConfig.batch_tokens = 0"]
  if args.smoke:
    gin_files[1] = os.path.join(ROOT, "gin", "models", "tiny.gin")
    common += ["TrainConfig.eval_max_examples = 32", "TrainConfig.log_every_steps = 2",
               "TrainConfig.steps_per_loop = 2"]
  plan = runs_for(args.steps, args.batch, args.warmup)
  if args.only:
    plan = {k: v for k, v in plan.items() if k in args.only.split(",")}
  skip = set(filter(None, args.skip.split(",")))
  done = {}
  for name, (k, updates, params) in plan.items():
    p = common + params + [f"TrainConfig.train_steps = {max(updates, 2)}"]
    if args.smoke:
      p = [x for x in p if not x.startswith("PruningConfig.frequency")] + \
          (["PruningConfig.frequency = 1"] if name.startswith("prune") else [])
    done[name] = runlib.reused(name, args.output_root) if name in skip else runlib.train(
        name, gin_files, p, args.output_root, args.manual_dir, args.data_dir)

  metric, better = METRIC.get(args.problem, ("loss_per_token", "lower"))
  base_loss = runlib.scalars(done["base"]["dir"], ["loss"])["loss"] if "base" in done else {}
  # Target: the base run's smoothed training loss over its last 10% of updates, +5%.
  tail = [v for s, v in sorted(base_loss.items())][-max(len(base_loss) // 10, 1):]
  target = 1.05 * sum(tail) / len(tail) if tail else float("nan")
  b_simple = None
  inst = os.path.join(done.get("base", {}).get("dir", ""), "instruments.json")
  if os.path.exists(inst):
    b_simple = json.load(open(inst)).get("critical_batch_tokens")
  b_simple_examples = None
  if b_simple:  # B_simple is in target tokens; the base run's tokens per example convert it
    rates = runlib.scalars(done["base"]["dir"], ["examples_per_sec", "tokens_per_sec"])
    ex, tok = sum(rates["examples_per_sec"].values()), sum(rates["tokens_per_sec"].values())
    b_simple_examples = b_simple * ex / tok if tok else None
  rows, points = [], []
  for name, (k, updates, params) in plan.items():
    m = runlib.final_metrics(done[name]["dir"])
    value = m.get(metric) if m else None
    hit = updates_to(done[name]["dir"], target) if tail else None
    rows.append(f"| {name} | {k * args.batch} | {updates} | "
                f"{'-' if value is None else f'{value:.2f}'} | {hit if hit else 'not reached'} | "
                f"{done[name]['wall_s'] / 60:.1f} | {done[name]['rc']} |")
    points.append((name, k * args.batch, value, hit))
  text = "\n".join([
      f"# Large-batch, MoE and pruning report: {args.problem}, "
      f"gin/models/{os.path.basename(gin_files[1])}",
      "", f"Machine: {runlib.machine()}. Date: {time.strftime('%Y-%m-%d %H:%M')}.",
      f"Command: python benchmarks/large_batch.py --problem={args.problem} "
      f"--model={args.model} --steps={args.steps} --batch={args.batch} "
      f"--warmup={args.warmup}"
      + (" --smoke" if args.smoke else ""), "",
      f"Target training loss for 'updates to target': {target:.4f} (base run's last-10% mean "
      f"+5%). Measured gradient noise scale B_simple (base run): "
      + (f"{b_simple:.0f} target tokens" if b_simple else "n/a")
      + (f" = {b_simple_examples:.0f} examples" if b_simple_examples else "") + ".", "",
      f"| run | effective batch (examples) | updates | {metric} ({better} is better) | "
      "updates to target | wall min | exit |", "|---|---|---|---|---|---|---|", *rows, "",
      *bars(points, metric, better, args.steps), ""])
  os.makedirs(RESULTS, exist_ok=True)
  with open(os.path.join(RESULTS, "large_batch.md"), "w") as f:
    f.write(text)
  print(text)
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError as e:
    print(f"no plots ({e}); pip install -e '.[bench]'")
    return
  fig, ax = plt.subplots(figsize=(9, 3.5))
  ax.bar([p[0] for p in points], [p[2] or 0 for p in points])
  ax.set_ylabel(f"{metric} ({better} is better)")
  ax.tick_params(axis="x", rotation=45)
  fig.tight_layout()
  fig.savefig(os.path.join(RESULTS, "large_batch.png"), dpi=100)
  fig, ax = plt.subplots(figsize=(5, 3.5))
  best = {}  # effective batch -> fewest updates to target among its runs with a rule
  for name, batch, _, hit in points:
    if hit and (name == "base" or (name.startswith("k") and "norule" not in name)):
      best[batch] = min(best.get(batch, hit), hit)
  xs = sorted(best)
  ax.plot(xs, [best[x] for x in xs], "o-", label="updates to target (best rule)")
  ax.plot(xs, [best[xs[0]] * xs[0] / x for x in xs], "k:", label="perfect scaling")
  if b_simple and b_simple_examples:
    ax.axvline(b_simple_examples, color="C1", linestyle="--",
               label=f"B_simple ~ {b_simple_examples:.0f} examples")
  ax.set_xscale("log", base=2)
  ax.set_xlabel("effective batch (examples)")
  ax.set_ylabel("optimizer updates")
  ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(RESULTS, "large_batch_steps.png"), dpi=100)


if __name__ == "__main__":
  main()

"""Transfer (MultiModel's second claim, Kaiser et al. 2017, arXiv:1706.05137 sec. 4):
does what one domain learned help another? Paired by seed, read on the test split once.

  python benchmarks/transfer.py --manual_dir=../shared/data --data_dir=DIR \
      [--experiments=m30k_to_sst2,joint_to_sst2] [--seeds=0,1,2,3,4] [--smoke] [--dry_run]

Each experiment trains, for every seed, a SOURCE run and then the TARGET problem's own
recipe (gin/experiments/sst2.gin) in several arms of the same steps and seed: from scratch,
and warm-started from that seed's source (TrainConfig.init_from) with the backbone only
(the two runs' vocabularies differ, so no embedding can carry over), fully trained or with
the backbone frozen (TrainConfig.trainable = 'adapters'). Every source uses the target
recipe's backbone shape (128 wide, 2 encoder + 1 decoder layers), so the backbone fits.

* m30k_to_sst2: source multi30k_en_de (gin/experiments/multi30k_en_de.gin at that shape).
* shakespeare_to_sst2: source tinyshakespeare (a decoder-only language model: only the
  decoder layers carry anything learned).
* joint_to_sst2: source ONE model on mnist + multi30k_en_de (a problem added to a trained
  joint model's backbone with a fresh adapter); arms scratch / all / adapters.

Nothing is chosen on test: the recipe is fixed before the runs; the validation split is
read every `--curve_every` steps for the curves; the test split once, at the end of
each target run. Reports each arm's mean ± sd over seeds, the paired 95% interval of
(arm - scratch), the minutes, and the validation curves. Re-running the same command
skips finished runs and resumes the others (it prints the runs and an estimate first).
Writes benchmarks/results/transfer_EXPERIMENT.{md,json,png} (..._smoke.* with --smoke)."""

import argparse
import json
import os
import sys

import runlib
from runlib import RESULTS, ROOT

EXP = os.path.join(ROOT, "gin", "experiments")
SHAPE = ["BackboneConfig.model_dim = 128", "BackboneConfig.num_heads = 4",
         "BackboneConfig.ffn_dim = 512", "BackboneConfig.num_encoder_layers = 2",
         "BackboneConfig.num_decoder_layers = 1", "BackboneConfig.dropout_rate = 0.1",
         "precision.policy = 'float32'", "TrainConfig.final_eval_role = ''",
         "TrainConfig.eval_every_steps = 0"]
SOURCES = {
    "m30k": ([os.path.join(EXP, "multi30k_en_de.gin")],
             SHAPE + ["TrainConfig.train_steps = 1000",
                      "TrainConfig.checkpoint_every_steps = 500"]),
    "shakespeare": ([os.path.join(EXP, "tinyshakespeare.gin")],
                    SHAPE + ["TrainConfig.train_steps = 1500",
                             "TrainConfig.checkpoint_every_steps = 500"]),
    "joint": ([os.path.join(EXP, "multi30k_en_de.gin")], SHAPE + [
        "joint/Mixture.name = 'mnist_m30k'",
        "joint/Mixture.problems = ['mnist', 'multi30k_en_de']",
        "joint/Mixture.rates = {'mnist': 0.3, 'multi30k_en_de': 0.7}",
        "TrainConfig.problem = @joint/Mixture()", "TrainConfig.batch_size = 64",
        "TrainConfig.batch_tokens = 0",
        "TrainConfig.per_problem = {'multi30k_en_de': {'batch_tokens': 2048, "
        "'label_smoothing': 0.1}}",
        "ImageConfig.patch_size = 8", "ImageConfig.stem = 'conv'",
        "ImageConfig.stem_channels = 32", "ImageConfig.stem_batch_norm = True",
        "TrainConfig.train_steps = 1500", "TrainConfig.checkpoint_every_steps = 500"]),
}
EXPERIMENTS = {  # name -> (source, arms: name -> extra target bindings (SRC: source dir))
    "m30k_to_sst2": ("m30k", {"scratch": [], "backbone": [
        "TrainConfig.init_from = 'SRC'", "TrainConfig.init_scope = 'backbone'"]}),
    "shakespeare_to_sst2": ("shakespeare", {"scratch": [], "backbone": [
        "TrainConfig.init_from = 'SRC'", "TrainConfig.init_scope = 'backbone'"]}),
    "joint_to_sst2": ("joint", {"scratch": [], "backbone": [
        "TrainConfig.init_from = 'SRC'", "TrainConfig.init_scope = 'backbone'"],
        "backbone_frozen": [
        "TrainConfig.init_from = 'SRC'", "TrainConfig.init_scope = 'backbone'",
        "TrainConfig.trainable = 'adapters'"]}),
}
TARGET = ("sst2", "accuracy", os.path.join(EXP, "sst2.gin"))
MINUTES = {"m30k": 4.0, "shakespeare": 3.0, "joint": 5.0, "target": 3.5}  # per run


def plan(args):
  """[run spec] in the order they must run (a seed's source before its arms)."""
  specs, smoke = [], (["TrainConfig.train_steps = 20", "TrainConfig.eval_max_examples = 32",
                       "TrainConfig.checkpoint_every_steps = 10",
                       "TrainConfig.log_every_steps = 10"] if args.smoke else [])
  for exp in args.experiments:
    source, arms = EXPERIMENTS[exp]
    for seed in args.seeds:
      src_name = f"src_{source}_s{seed}"
      files, params = SOURCES[source]
      if not any(s["name"] == src_name for s in specs):
        specs.append({"name": src_name, "kind": "source", "files": files,
                      "params": params + [f"TrainConfig.seed = {seed}"] + smoke,
                      "minutes": MINUTES[source]})
      src_dir = os.path.join(args.output_root, src_name)
      for arm, extra in arms.items():
        every = 10 if args.smoke else args.curve_every
        specs.append({
            "name": f"{exp}_{arm}_s{seed}", "kind": "target", "experiment": exp,
            "arm": arm, "seed": seed, "source": src_name, "files": [TARGET[2]],
            "params": [p.replace("SRC", src_dir) for p in extra] + [
                f"TrainConfig.seed = {seed}", f"TrainConfig.eval_every_steps = {every}",
                "TrainConfig.final_eval_role = 'test'"] + smoke,
            "minutes": MINUTES["target"]})
  return specs


def finished(spec, root):
  run = os.path.join(root, spec["name"])
  if spec["kind"] == "source":
    return runlib.reused(spec["name"], root).get("rc") == 0 and os.path.isdir(
        os.path.join(run, "checkpoints"))
  return runlib.final_metrics(run) is not None


def collect(specs, root):
  """{experiment: {arm: {seed: test accuracy}}}, {experiment: {arm: {step: [values]}}},
  {experiment: {arm: [minutes]}}."""
  values, curves, minutes = {}, {}, {}
  for s in specs:
    if s["kind"] != "target":
      continue
    run = os.path.join(root, s["name"])
    final = runlib.final_metrics(run)
    if final is None:
      continue
    values.setdefault(s["experiment"], {}).setdefault(s["arm"], {})[s["seed"]] = \
        final[TARGET[1]]
    for step, m in runlib.metrics_by_step(run, "eval").items():
      curves.setdefault(s["experiment"], {}).setdefault(s["arm"], {}).setdefault(
          step, []).append(m[TARGET[1]])
    minutes.setdefault(s["experiment"], {}).setdefault(s["arm"], []).append(
        runlib.reused(s["name"], root)["wall_s"] / 60)
  return values, curves, minutes


def report(args, specs, values, minutes, wall_s):
  lines = [f"# Transfer: {TARGET[0]} {TARGET[1]} (test) from a source run vs from scratch",
           "", f"Command: `{' '.join(sys.argv)}`", f"Machine: {runlib.machine()}",
           f"Seeds: {', '.join(map(str, args.seeds))}; wall time of the runs: "
           f"{wall_s / 60:.1f} min", "",
           "| experiment | arm | test accuracy, mean ± sd | n | arm - scratch, mean [95% CI] "
           "| minutes per run | per seed |", "|---|---|---|---|---|---|---|"]
  for exp, arms in values.items():
    base = arms.get("scratch", {})
    for arm, by_seed in arms.items():
      seeds = sorted(by_seed)
      mean, sd = runlib.mean_sd([by_seed[s] for s in seeds])
      common = [s for s in seeds if s in base]
      diff = "-"
      if arm != "scratch" and len(common) >= 2:
        d, lo, hi = runlib.paired_interval([base[s] for s in common],
                                           [by_seed[s] for s in common])
        diff = f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]"
      mins = runlib.mean_sd(minutes[exp][arm])[0]
      lines.append(f"| {exp} | {arm} | {mean:.2f} ± {sd:.2f} | {len(seeds)} | {diff} | "
                   f"{mins:.1f} | " + ", ".join(f"{by_seed[s]:.2f}" for s in seeds) + " |")
  lines += ["", "Runs (source, then arms; gin bindings after the files):", ""]
  for s in specs:
    lines.append(f"- `{s['name']}`: {' '.join(os.path.relpath(f, ROOT) for f in s['files'])}"
                 f" + {'; '.join(s['params'])}")
  return "\n".join(lines) + "\n"


def plot(curves, png):
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    print("matplotlib not installed: no plot", flush=True)
    return
  fig, axes = plt.subplots(1, max(1, len(curves)), figsize=(5 * max(1, len(curves)), 3.5),
                           squeeze=False)
  for ax, (exp, arms) in zip(axes[0], curves.items()):
    for arm, by_step in arms.items():
      steps = sorted(by_step)
      ax.plot(steps, [sum(by_step[s]) / len(by_step[s]) for s in steps], label=arm)
    ax.set_title(exp)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{TARGET[0]} validation {TARGET[1]} (mean over seeds)")
    ax.legend()
  fig.tight_layout()
  fig.savefig(png)


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--manual_dir", default=os.path.join(ROOT, "..", "shared", "data"))
  ap.add_argument("--data_dir", default=os.path.expanduser("~/onemodel_data/prepared"))
  ap.add_argument("--output_root", default="")
  ap.add_argument("--experiments", default="m30k_to_sst2,joint_to_sst2",
                  help="comma-separated: " + ", ".join(EXPERIMENTS))
  ap.add_argument("--seeds", default="0,1,2,3,4")
  ap.add_argument("--curve_every", type=int, default=250)
  ap.add_argument("--smoke", action="store_true", help="20-step runs: checks the pipeline")
  ap.add_argument("--dry_run", action="store_true")
  args = ap.parse_args()
  args.experiments = args.experiments.split(",")
  bad = [e for e in args.experiments if e not in EXPERIMENTS]
  if bad:
    sys.exit(f"--experiments: unknown {', '.join(bad)} (known: {', '.join(EXPERIMENTS)})")
  args.seeds = [int(s) for s in args.seeds.split(",")]
  if len(args.seeds) < 2:
    sys.exit("--seeds: at least 2 (5 for the real table): intervals need them")
  suffix = "_smoke" if args.smoke else ""
  args.output_root = args.output_root or os.path.join(ROOT, "runs", "transfer" + suffix)
  specs = plan(args)
  todo = [s for s in specs if not finished(s, args.output_root)]
  print(f"{len(specs)} runs, {len(todo)} to do: about "
        f"{sum(s['minutes'] for s in todo):.0f} min on 2 cores", flush=True)
  for s in todo:
    print(f"  {s['name']}", flush=True)
  if args.dry_run:
    return
  for s in todo:
    record = runlib.train(s["name"], s["files"], s["params"], args.output_root,
                          args.manual_dir, args.data_dir)
    if record["rc"] != 0:
      sys.exit(f"{s['name']} failed (exit {record['rc']}); see its log; re-run to resume")
  os.makedirs(RESULTS, exist_ok=True)
  for exp in args.experiments:  # one results file per experiment: later runs add, not replace
    targets = [s for s in specs if s.get("experiment") == exp]
    mine = [s for s in specs if s in targets or any(t["source"] == s["name"] for t in targets)]
    values, curves, minutes = collect(mine, args.output_root)
    wall = sum(runlib.reused(s["name"], args.output_root)["wall_s"] for s in mine)
    text = report(args, mine, values, minutes, wall)
    base = os.path.join(RESULTS, f"transfer_{exp}{suffix}")
    with open(base + ".md", "w") as f:
      f.write(text)
    runlib.write_json(base + ".json", {
        "values": values, "curves": curves, "minutes": minutes, "seeds": args.seeds,
        "command": " ".join(sys.argv)})
    plot(curves, base + ".png")
    print(text)


if __name__ == "__main__":
  main()

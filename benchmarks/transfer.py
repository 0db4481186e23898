"""Transfer (MultiModel's second claim, Kaiser et al. 2017, arXiv:1706.05137 sec. 4):
does what one domain learned help another? Paired by seed, read on the test split once.

  python benchmarks/transfer.py --manual_dir=../shared/data --data_dir=DIR \
      [--experiments=m30k_to_sst2,joint_to_sst2] [--seeds=0,1,2,3,4] [--smoke] [--dry_run]

Each experiment trains, for every seed, a SOURCE run and then the TARGET problem's own
recipe (gin/experiments/sst2.gin, fsdd.gin) in several arms of the same steps and seed: from
scratch, and warm-started from that seed's source (TrainConfig.init_from) with the backbone
only (the runs' vocabularies and modalities differ, so no adapter can carry over), fully
trained or with the backbone frozen (TrainConfig.trainable = 'adapters'). Every source
uses the targets' backbone shape (128 wide, 2 encoder + 1 decoder layers), so it fits.

* m30k_to_sst2: source multi30k_en_de (gin/experiments/multi30k_en_de.gin at that shape).
* shakespeare_to_sst2: source tinyshakespeare (a decoder-only language model: only the
  decoder layers carry anything learned).
* joint_to_sst2: source ONE model on mnist + multi30k_en_de (a problem added to a trained
  joint model's backbone with a fresh adapter); arms scratch / all / adapters.
* joint_to_fsdd_10pct: small data: fsdd on 10% of its training clips
  (TrainConfig.train_split), from the same joint source's backbone vs from scratch.

Nothing is chosen on test: the recipe is fixed before the runs; the validation split is
read every `--curve_every` steps for the curves; the test split once, at the end of
each target run. Reports each arm's mean ± sd over seeds, the paired 95% interval of
(arm - scratch), the minutes (and normalized to a 200 GFLOP/s fp32 matmul peak, the one
each run's log reports), and the validation curves. Every finished target run goes into
benchmarks/results/transfer_EXPERIMENT.json (a ledger: its test value, curve, minutes,
machine, commit and a digest of the recipe file; a ledger run whose bindings or recipe
differ from this checkout's stops the script rather than be mixed into one table), and
.md/.png are rewritten from it; re-running the command, in this session or
a later one on another machine, skips the runs in the ledger, trains a seed's source again
only if that seed still has runs to do, and resumes unfinished runs in --output_root (it
prints the runs and an estimate first). With --smoke: transfer_EXPERIMENT_smoke.*."""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time

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
BACKBONE = ["TrainConfig.init_from = 'SRC'", "TrainConfig.init_scope = 'backbone'"]
# name -> (source, target, arms: name -> extra target bindings (SRC: the source's run dir))
EXPERIMENTS = {
    "m30k_to_sst2": ("m30k", "sst2", {"scratch": [], "backbone": BACKBONE}),
    "shakespeare_to_sst2": ("shakespeare", "sst2", {"scratch": [], "backbone": BACKBONE}),
    "joint_to_sst2": ("joint", "sst2", {"scratch": [], "backbone": BACKBONE,
                                        "backbone_frozen": BACKBONE + [
                                            "TrainConfig.trainable = 'adapters'"]}),
    "joint_to_fsdd_10pct": ("joint", "fsdd_10pct", {"scratch": [], "backbone": BACKBONE}),
}
# target -> (problem, metric, recipe, bindings after it)
TARGETS = {
    "sst2": ("sst2", "accuracy", os.path.join(EXP, "sst2.gin"), []),
    # Small data: 240 of fsdd's 2,400 training clips (TFDS keeps a split's records in a
    # shuffled order, so the first 10% mixes speakers and digits), the recipe's batch and
    # schedule over 1,500 steps (200 epochs of the subset).
    "fsdd_10pct": ("fsdd", "wer", os.path.join(EXP, "fsdd.gin"), [
        "TrainConfig.train_split = 'train[:10%]'", "TrainConfig.train_steps = 1500",
        "TrainConfig.checkpoint_every_steps = 1500"]),
}
MINUTES = {"m30k": 4.0, "shakespeare": 3.0, "joint": 5.0, "sst2": 3.5,
           "fsdd_10pct": 2.5}  # per run


def plan(args):
  """[run spec] in the order they must run (a seed's source before its arms)."""
  specs, smoke = [], (["TrainConfig.train_steps = 20", "TrainConfig.eval_max_examples = 32",
                       "TrainConfig.checkpoint_every_steps = 10",
                       "TrainConfig.log_every_steps = 10"] if args.smoke else [])
  for exp in args.experiments:
    source, target, arms = EXPERIMENTS[exp]
    _, _, recipe, target_params = TARGETS[target]
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
            "arm": arm, "seed": seed, "source": src_name, "files": [recipe],
            "params": target_params + [p.replace("SRC", src_dir) for p in extra] + [
                f"TrainConfig.seed = {seed}", f"TrainConfig.eval_every_steps = {every}",
                "TrainConfig.final_eval_role = 'test'"] + smoke,
            "minutes": MINUTES[target]})
  return specs


def ledger_path(exp, suffix=""):
  return os.path.join(RESULTS, f"transfer_{exp}{suffix}.json")


def load_ledger(exp, suffix=""):
  """{run name: entry} of an experiment's finished target runs, kept in its results JSON:
  the ledger lets the table grow across sessions and machines (run directories need not
  survive; a source is only trained again for a seed whose arms are not all in it)."""
  path = ledger_path(exp, suffix)
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f).get("runs", {})


def entry(spec, root, metric):
  """A finished target run's ledger entry, or None: test value, validation curve, the
  bindings and minutes of its run record, and the fp32 matmul peak its log reports (to
  normalize the minutes)."""
  run = os.path.join(root, spec["name"])
  final = runlib.final_metrics(run)
  if final is None:
    return None
  peak = None
  log = os.path.join(root, f"{spec['name']}.log")
  if os.path.exists(log):
    with open(log) as f:
      found = re.findall(r"matmul peak of this machine: ([0-9.]+) GFLOP/s", f.read())
    peak = float(found[-1]) if found else None
  run_record = runlib.reused(spec["name"], root)
  minutes = run_record["wall_s"] / 60
  return {"arm": spec["arm"], "seed": spec["seed"], "test": final[metric],
          "curve": {str(k): m[metric] for k, m in sorted(
              runlib.metrics_by_step(run, "eval").items())},
          "minutes": None if minutes != minutes else minutes, "peak_gflops": peak,
          "machine": runlib.machine(), "date": time.strftime("%Y-%m-%d"),
          "commit": run_record.get("commit") or runlib.git_rev(ROOT),
          "recipe": recipe_digest(spec["files"]),
          "params": run_record.get("params", spec["params"])}


def ledger_recipe(done, files):
  """The digest of the recipe a ledger run trained: kept in entries since 2026-12-07;
  for older ones, the file at the entry's commit; None if neither is known (entries
  without a commit, a shallow clone)."""
  if done.get("recipe"):
    return done["recipe"]
  commit = done.get("commit")
  return recipe_digest(files, commit) if commit and commit != "?" else None


def recipe_digest(files, commit=None):
  """A digest of the target recipe's gin files as they are now, or as they were at
  `commit` (None where git cannot show them there, e.g. in a shallow clone)."""
  digest = hashlib.sha256()
  for path in files:
    if commit is None:
      with open(path, "rb") as f:
        digest.update(f.read())
      continue
    rel = os.path.relpath(os.path.abspath(path), ROOT)
    shown = subprocess.run(["git", "-C", ROOT, "show", f"{commit}:{rel}"],
                           capture_output=True)
    if shown.returncode:
      return None
    digest.update(shown.stdout)
  return digest.hexdigest()[:16]


def same_bindings(a, b):
  """Two runs' target bindings agree, up to where their source lived."""
  def norm(params):
    return [re.sub(r"init_from = '.*'", "init_from = SRC", p) for p in params]
  return norm(a) == norm(b)


def to_run(specs, ledgers, root):
  """The specs still to run, in order: target runs not in their experiment's ledger, and
  the sources they start from unless those finished in `root`."""
  for s in specs:
    done = ledgers.get(s.get("experiment"), {}).get(s["name"])
    if done and not same_bindings(done["params"], s["params"]):
      sys.exit(f"{s['name']}: the ledger's run had other bindings ({'; '.join(done['params'])})"
               "; name a new experiment or remove that run from the ledger")
    # The recipe file itself may have changed since.
    ran = ledger_recipe(done, s["files"]) if done else None
    if done and ran != recipe_digest(s["files"]):
      files = ", ".join(os.path.relpath(f, ROOT) for f in s["files"])
      which = "another" if ran else "an unknown version of"
      sys.exit(f"{s['name']}: the ledger's run trained {which} {files} (commit "
               f"{done.get('commit')}) than this checkout's; name a new experiment or "
               "remove that run from the ledger")
  pending = {s["name"] for s in specs
             if s["kind"] == "target" and s["name"] not in ledgers[s["experiment"]]}
  sources = {s["source"] for s in specs if s["name"] in pending}
  return [s for s in specs if s["name"] in pending or (
      s["name"] in sources and not (
          runlib.reused(s["name"], root).get("rc") == 0
          and os.path.isdir(os.path.join(root, s["name"], "checkpoints"))))]


def tables(ledger):
  """{arm: {seed: test}}, {arm: {step: [values]}}, {arm: [minutes]}, {arm: [normalized]}."""
  values, curves, minutes, normalized = {}, {}, {}, {}
  for e in sorted(ledger.values(), key=lambda e: e["seed"]):
    values.setdefault(e["arm"], {})[e["seed"]] = e["test"]
    for step, v in e["curve"].items():
      curves.setdefault(e["arm"], {}).setdefault(int(step), []).append(v)
    if e["minutes"] is None:
      continue
    minutes.setdefault(e["arm"], []).append(e["minutes"])
    if e.get("peak_gflops"):
      normalized.setdefault(e["arm"], []).append(e["minutes"] * e["peak_gflops"] / 200)
  return values, curves, minutes, normalized


def record(spec, root, ledger, suffix):
  """Puts a finished target run into its experiment's ledger and rewrites the results."""
  exp = spec["experiment"]
  if spec["name"] in ledger:
    return
  e = entry(spec, root, TARGETS[EXPERIMENTS[exp][1]][1])
  if e is not None:
    ledger[spec["name"]] = e
    write_results(exp, ledger, suffix, " ".join(sys.argv))


def write_results(exp, ledger, suffix, command=""):
  """transfer_EXP.json (the ledger, the commands that trained its runs, a hand-written
  "reading"), .md and .png."""
  old = {}
  os.makedirs(RESULTS, exist_ok=True)
  if os.path.exists(ledger_path(exp, suffix)):
    with open(ledger_path(exp, suffix)) as f:
      old = json.load(f)
  commands = old.get("commands", [])
  commands += [command] if command and command not in commands else []
  runlib.write_json(ledger_path(exp, suffix), {**old, "runs": ledger, "commands": commands})
  base = ledger_path(exp, suffix)[:-len(".json")]
  with open(base + ".md.tmp", "w") as f:
    f.write(report(exp, ledger, commands, old.get("reading", "")))
  os.replace(base + ".md.tmp", base + ".md")
  plot(exp, tables(ledger)[1], base + ".png")


def report(exp, ledger, commands, reading=""):
  problem, metric = TARGETS[EXPERIMENTS[exp][1]][:2]
  values, _, minutes, normalized = tables(ledger)
  better = "lower" if metric in ("wer", "cer") else "higher"
  machines = sorted({e["machine"] + (f" ({e['peak_gflops']:.0f} GFLOP/s)"
                                      if e.get("peak_gflops") else "") + f", {e['date']}"
                     for e in ledger.values()})
  source = EXPERIMENTS[exp][0]
  lines = [f"# Transfer ({exp}): {problem} {metric} (test) from a source run vs from "
           "scratch", "", *[f"Command: `{c}`" for c in commands],
           "Machines: " + "; ".join(machines),
           f"Target runs: {len(ledger)}; their wall time: "
           f"{sum(sum(m) for m in minutes.values()):.1f} min (sources not counted)", "",
           f"| experiment | arm | test {metric} ({better} is better), mean ± sd | n | "
           "arm - scratch, mean [95% CI] | minutes per run (normalized to 200 GFLOP/s, "
           "where the peak is known) | per seed |",
           "|---|---|---|---|---|---|---|"]
  base = values.get("scratch", {})
  for arm, by_seed in values.items():
    seeds = sorted(by_seed)
    mean, sd = runlib.mean_sd([by_seed[s] for s in seeds])
    common = [s for s in seeds if s in base]
    diff = "-"
    if arm != "scratch" and len(common) >= 2:
      d, lo, hi = runlib.paired_interval([base[s] for s in common],
                                         [by_seed[s] for s in common])
      diff = f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]"
    mins = f"{runlib.mean_sd(minutes[arm])[0]:.1f}" if minutes.get(arm) else "?"
    if len(normalized.get(arm, [])) == len(by_seed):
      mins += f" ({runlib.mean_sd(normalized[arm])[0]:.1f})"
    lines.append(f"| {exp} | {arm} | {mean:.2f} ± {sd:.2f} | {len(seeds)} | {diff} | "
                 f"{mins} | " + ", ".join(f"{by_seed[s]:.2f}" for s in seeds) + " |")
  lines += ["", f"Source runs `src_{source}_sSEED`: "
            f"{' '.join(os.path.relpath(f, ROOT) for f in SOURCES[source][0])} + "
            f"{'; '.join(SOURCES[source][1])}; TrainConfig.seed = SEED"]
  lines += ["", "Target runs (gin bindings after its recipe, "
            f"{os.path.relpath(TARGETS[EXPERIMENTS[exp][1]][2], ROOT)}):", ""]
  for name, e in sorted(ledger.items(), key=lambda kv: (kv[1]["seed"], kv[0])):
    lines.append(f"- `{name}`: {'; '.join(e['params'])}")
  if reading:  # written by hand into the JSON's "reading" after looking at the table
    lines += ["", "Reading: " + reading]
  return "\n".join(lines) + "\n"


def plot(exp, curves, png):
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    print("matplotlib not installed: no plot", flush=True)
    return
  problem, metric = TARGETS[EXPERIMENTS[exp][1]][:2]
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for arm, by_step in curves.items():
    steps = sorted(by_step)
    ax.plot(steps, [sum(by_step[s]) / len(by_step[s]) for s in steps], label=arm)
  ax.set_title(exp)
  ax.set_xlabel("step")
  ax.set_ylabel(f"{problem} validation {metric} (mean over seeds)")
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
  ledgers = {exp: load_ledger(exp, suffix) for exp in args.experiments}

  for s in specs:  # runs finished in --output_root before the ledger knew them
    if s["kind"] == "target" and not args.dry_run:
      record(s, args.output_root, ledgers[s["experiment"]], suffix)
  todo = to_run(specs, ledgers, args.output_root)
  print(f"{len(specs)} runs, {len(todo)} to do: about "
        f"{sum(s['minutes'] for s in todo):.0f} min at a 200 GFLOP/s fp32 peak",
        flush=True)
  for s in todo:
    print(f"  {s['name']}", flush=True)
  if args.dry_run:
    return
  for s in todo:
    result = runlib.train(s["name"], s["files"], s["params"], args.output_root,
                          args.manual_dir, args.data_dir)
    if result["rc"] != 0:
      sys.exit(f"{s['name']} failed (exit {result['rc']}); see its log; re-run to resume")
    if s["kind"] == "target":
      record(s, args.output_root, ledgers[s["experiment"]], suffix)
  for exp in args.experiments:
    print(report(exp, ledgers[exp], []))


if __name__ == "__main__":
  main()

"""Input pipeline alone vs what the train step consumes, per built-in problem (bar:
each problem's pipeline delivers >= 5x the examples/s of the base-size train step).

  PYTHONPATH=. python benchmarks/input_pipeline.py --manual_dir=../shared/data \
      [--problems=mnist,fsdd,multi30k_en_de,tinyshakespeare --batches=200 --steps=30]
      [--cache]

For each problem, with its gin/experiments/PROBLEM.gin (base model, its batch size or
token budget):
- pipeline: `Trainer._dataset`, i.e. onemodel.data.dataset(problem, 'train', ...,
  training=True) exactly as training builds it, iterated alone for at least --batches
  batches and --seconds seconds after --warmup_batches (the shuffle buffer filled):
  examples/s;
- raw read: the raw TFDS train records alone (`data.raw_split`, no features, no
  batching), records/s, to show where the pipeline's time goes (Python-iterated per
  record, so capped by Python's overhead at a few 10k/s);
- train step: the real `Trainer.train_loop()` on --cache_batches batches of the
  same pipeline held in memory (so no input work is timed), --steps steps after one
  warm-up call: the examples/s the step consumes;
- ratio = pipeline / train step;
- with --cache, also the pipeline with TrainConfig.cache = True (prepared features kept
  in memory), timed after one full epoch has filled the cache.
Writes benchmarks/results/input_pipeline.md. The pipeline is measured with both cores to
itself; during training it shares them with the step, so 5x means it needs at most
about a fifth of the machine."""

import argparse
import functools
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import gin
import tensorflow as tf

import peer_lib
import runlib
from onemodel import data as data_lib
from onemodel import registry
from onemodel import trainer as trainer_lib
from onemodel.cli import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBLEMS = ("mnist", "fsdd", "multi30k_en_de", "tinyshakespeare")


def batch_examples(batch, accum):
  """Examples in one training batch (packed rows: the examples packed into them)."""
  if "targets_segment_ids" in batch:
    seg = tf.cast(batch["targets_segment_ids"], tf.float32)
    return float(tf.reduce_sum(tf.reduce_max(seg, axis=-1)))
  return int(batch["targets"].shape[0]) * (int(batch["targets"].shape[1]) if accum > 1
                                           else 1)


def pipeline_rate(ds, warmup, batches, seconds, accum):
  """At least `batches` batches and `seconds` seconds after `warmup` batches (long
  enough that the shuffle and prefetch buffers filled during warm-up do not count)."""
  it = iter(ds)
  for _ in range(warmup):
    next(it)
  examples = n = 0
  t0 = time.perf_counter()
  while n < batches or time.perf_counter() - t0 < seconds:
    examples += batch_examples(next(it), accum)
    n += 1
  dt = time.perf_counter() - t0
  return examples / dt, n / dt


def read_rate(problem, data_dir, examples, seconds):
  """Raw TFDS train records alone (read, parsed, decoded; no features, no batching),
  iterated like the pipeline after a warm-up: records/s. Python's per-record overhead
  (tens of microseconds) caps it, so it is a diagnostic, not a bound."""
  ds = data_lib.raw_split(problem, "train", data_dir, shuffle_files=True).repeat()
  it = iter(ds.prefetch(tf.data.AUTOTUNE))
  for _ in range(min(200, examples)):
    next(it)
  n = 0
  t0 = time.perf_counter()
  while n < examples or time.perf_counter() - t0 < seconds:
    next(it)
    n += 1
  return n / (time.perf_counter() - t0)


def train_rate(tr, cache_batches, steps, steps_per_loop):
  """Examples/s of the real train loop on batches held in memory."""
  it = iter(tr.dataset(tf.distribute.InputContext(), tr.problem))
  held = [next(it) for _ in range(cache_batches)]
  del it
  ds = functools.reduce(lambda a, b: a.concatenate(b),
                        [tf.data.Dataset.from_tensors(b) for b in held]).repeat()
  name = tr.problem.name
  dit = iter(tr.strategy.distribute_datasets_from_function(lambda ctx: ds))
  loop = tr.train_loop()
  loop(dit, tf.constant(steps_per_loop))  # trace
  examples = 0.0
  t0 = time.perf_counter()
  for _ in range(steps // steps_per_loop):
    examples += float(loop(dit, tf.constant(steps_per_loop))["examples"])
  dt = time.perf_counter() - t0
  return examples / dt, steps / dt


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--data_dir", default="/tmp/om_data")
  ap.add_argument("--manual_dir", default="../shared/data")
  ap.add_argument("--problems", default=",".join(PROBLEMS))
  ap.add_argument("--batches", type=int, default=200,
                  help="pipeline: at least this many batches timed ...")
  ap.add_argument("--seconds", type=float, default=20.0, help="... and this many seconds")
  ap.add_argument("--warmup_batches", type=int, default=20)
  ap.add_argument("--read_examples", type=int, default=10000)
  ap.add_argument("--steps", type=int, default=30, help="train steps timed")
  ap.add_argument("--steps_per_loop", type=int, default=10)
  ap.add_argument("--cache_batches", type=int, default=16)
  ap.add_argument("--cache", action="store_true",
                  help="also time the pipeline with TrainConfig.cache=True, after one "
                  "full epoch (which fills the cache)")
  ap.add_argument("--results", default="", help="default: benchmarks/results/"
                  "input_pipeline.md; 'none' to skip")
  args = ap.parse_args()
  if args.steps % args.steps_per_loop:
    ap.error("--steps must be a multiple of --steps_per_loop")
  registry.load_plugins()
  print(peer_lib.machine_line(), flush=True)
  rows = []
  for name in args.problems.split(","):
    gin.clear_config()
    common.parse_gin([runlib.base_recipe(name)], [],
                     finalize=False)
    cfg = trainer_lib.TrainConfig()
    cfg.report_mfu, cfg.steps_per_loop = False, args.steps_per_loop
    tr = trainer_lib.Trainer(tempfile.mkdtemp(prefix=f"input_{name}_"), args.data_dir,
                             args.manual_dir, cfg=cfg)
    batching = f"batch_tokens {cfg.batch_tokens}" if cfg.batch_tokens else \
        f"batch {cfg.batch_size}" + (" packed" if cfg.pack else "")
    ds = tr.dataset(tf.distribute.InputContext(), tr.problem)
    pipe, pipe_bps = pipeline_rate(ds, args.warmup_batches, args.batches, args.seconds,
                                   cfg.grad_accum_steps)
    del ds
    cached = None
    if args.cache:
      tr.cfg.cache = True
      ds = tr.dataset(tf.distribute.InputContext(), tr.problem)
      epoch = data_lib.train_size(tr.problem, args.data_dir) // max(pipe / pipe_bps, 1)
      cached, _ = pipeline_rate(ds, int(epoch) + args.warmup_batches, args.batches,
                                args.seconds, cfg.grad_accum_steps)
      tr.cfg.cache = False
      del ds
    read = read_rate(tr.problem, args.data_dir, args.read_examples, args.seconds / 2)
    step, sps = train_rate(tr, args.cache_batches, args.steps, args.steps_per_loop)
    ratio = pipe / step
    rows.append((name, batching, pipe, pipe_bps, read, step, sps, ratio, cached))
    print(f"{name} ({batching}): pipeline {pipe:,.0f} ex/s ({pipe_bps:.1f} batches/s), "
          + (f"cached {cached:,.0f} ex/s, " if cached else "") +
          f"raw read {read:,.0f} ex/s | train step {step:,.0f} ex/s ({sps:.2f} steps/s) | "
          f"ratio {ratio:.1f}x", flush=True)
    shutil.rmtree(tr.output_dir, ignore_errors=True)
    del tr
  cache_col = " cached pipeline ex/s |" if args.cache else ""
  table = ["| problem | batching | pipeline ex/s |" + cache_col + " raw read records/s | "
           "train step ex/s (steps/s) | pipeline / step | bar >= 5x |",
           "|---" * (7 + bool(args.cache)) + "|"]
  for name, batching, pipe, pipe_bps, read, step, sps, ratio, cached in rows:
    table.append(f"| {name} | {batching} | {pipe:,.0f} |"
                 + (f" {cached:,.0f} |" if args.cache else "") + f" {read:,.0f} | "
                 f"{step:,.0f} ({sps:.2f}) | {ratio:.1f}x | "
                 f"{'met' if ratio >= 5 else 'NOT met'} |")
  print("\n".join([""] + table), flush=True)
  if args.results != "none":
    path = args.results or os.path.join(ROOT, "benchmarks", "results", "input_pipeline.md")
    body = [f"Per problem: gin/experiments/PROBLEM.gin. Pipeline: the training input "
            f"pipeline alone, >= {args.batches} batches and >= {args.seconds:g} s after "
            f"{args.warmup_batches}; raw read: >= {args.read_examples} TFDS train records "
            f"and >= {args.seconds / 2:g} s, Python-iterated; train step: the real "
            f"train loop on {args.cache_batches} batches held in memory, {args.steps} "
            f"steps after one warm-up call."
            + (" Cached: the same pipeline with TrainConfig.cache = True, timed after "
               "one full epoch (which fills the cache)." if args.cache else ""),
            "", *table]
    peer_lib.write_results(path, "Input pipeline alone vs train-step consumption", ROOT,
                           body)


if __name__ == "__main__":
  main()

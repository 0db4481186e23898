"""Cached vs uncached greedy decoding at output length 64, same model, one run.

  python benchmarks/decode_speed.py [--gin_file=gin/models/base.gin]

The base-size model (weights random: speed does not depend on them) decodes a batch of
64-token outputs from 32-token text inputs; both decoders run all 64 steps (no early stop
at EOS). Reports the median of --repeats timed calls after one warm-up (tracing) call,
for batch 1 and 32, and the cached decoder under XLA too."""

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import gin
import tensorflow as tf

from onemodel import decoding
from onemodel import model as model_lib
from onemodel import problem as problem_lib
from onemodel.cli import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(fn, batch, repeats):
  fn(batch)  # trace/compile
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    out = fn(batch)
    tf.nest.map_structure(lambda t: t.numpy(), out)
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--gin_file", default=os.path.join(ROOT, "gin", "models", "base.gin"))
  ap.add_argument("--length", type=int, default=64)
  ap.add_argument("--vocab_size", type=int, default=8000)
  ap.add_argument("--repeats", type=int, default=3)
  args = ap.parse_args()
  common.parse_gin([args.gin_file], [])
  spec = problem_lib.FeatureSpec("text", length=args.length, vocab=problem_lib.VocabSpec())
  p = problem_lib.Problem(name="bench", builder=None, raw_subdir="", inputs=spec,
                          targets=spec, splits={}, metrics=(), to_raw=None)
  vocab = type("V", (), {"vocab_size": args.vocab_size})()
  model = model_lib.build([p], {"bench": vocab})
  n = args.length
  uncached = tf.function(lambda b: decoding.greedy(model, "bench", b, n, stop_early=False))
  cached = tf.function(lambda b: decoding.cached_greedy(model, "bench", b, n,
                                                        stop_early=False)[0])
  cached_xla = tf.function(lambda b: decoding.cached_greedy(model, "bench", b, n,
                                                            stop_early=False)[0],
                           jit_compile=True)
  print(f"machine: {platform.machine()}, {os.cpu_count()} cores; model: {args.gin_file}; "
        f"output length {n}, vocab {args.vocab_size}")
  print("| batch | uncached s | cached s | cached+XLA s | speed-up (cached) | speed-up (XLA) |")
  print("|---|---|---|---|---|---|")
  for b in (1, 32):
    ids = tf.random.uniform([b, 32], 3, args.vocab_size, tf.int32, seed=1)
    batch = {"inputs": tf.pad(ids, [[0, 0], [0, n - 32]]), "targets": tf.zeros([b, n],
                                                                              tf.int32)}
    model(batch, problem="bench")
    u = timed(uncached, batch, args.repeats)
    c = timed(cached, batch, args.repeats)
    x = timed(cached_xla, batch, args.repeats)
    print(f"| {b} | {u:.3f} | {c:.3f} | {x:.3f} | {u / c:.1f}x | {u / x:.1f}x |", flush=True)


if __name__ == "__main__":
  main()

"""XLA on vs off for onemodel's own train step, in one process ("XLA where it
helps and off where it hurts -- measure; make it a gin switch": TrainConfig.jit_compile).

  PYTHONPATH=. python benchmarks/xla_speed.py --manual_dir=../shared/data \
      [--rounds=5 --steps=30]

One `trainer.Trainer` at base size (gin/models/base.gin, dropout 0 as in
speed_vs_peer.py) on multi30k_en_de's vocabulary builds its real train loop twice on the
same variables and the same random-token batches (64 x 32 -> 32): once with
TrainConfig.jit_compile=False and once with True. After a warm-up (trace, and XLA
compile) of each, the two alternate for --rounds rounds of --steps steps (order flipped
every round), so machine noise hits both alike. Prints each one's steps/s per round, the
medians and the ratio XLA/no-XLA; writes benchmarks/results/xla_speed.md."""

import argparse
import os
import shutil
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf

import peer_lib
from speed_vs_peer import PROBLEM, ROOT, synthetic_batches
from onemodel import trainer as trainer_lib


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--data_dir", default="/tmp/om_data")
  ap.add_argument("--manual_dir", default="../shared/data")
  ap.add_argument("--rounds", type=int, default=5)
  ap.add_argument("--steps", type=int, default=30, help="timed steps per round and side")
  ap.add_argument("--warmup_steps", type=int, default=10)
  ap.add_argument("--steps_per_loop", type=int, default=10)
  ap.add_argument("--batch", type=int, default=64)
  ap.add_argument("--length", type=int, default=32)
  ap.add_argument("--dropout", type=float, default=0.0)
  ap.add_argument("--results", default="", help="default: benchmarks/results/xla_speed.md; "
                  "'none' to skip")
  args = ap.parse_args()
  peer_lib.setup_base_model(ap, args, ROOT)
  cfg = trainer_lib.TrainConfig(problem=PROBLEM, batch_size=args.batch,
                                steps_per_loop=args.steps_per_loop, report_mfu=False,
                                train_steps=10 ** 6)
  out_dir = tempfile.mkdtemp(prefix="xla_speed_")
  tr = trainer_lib.Trainer(out_dir, args.data_dir, args.manual_dir, cfg=cfg)
  vocab_size = tr.model.target_embedding(PROBLEM).vocab_size
  inputs, targets = synthetic_batches(8, args.batch, args.length, vocab_size)
  ds = tf.data.Dataset.from_tensor_slices(
      {"inputs": inputs, "targets": targets}).repeat().prefetch(2)
  it = iter(tr.strategy.distribute_datasets_from_function(lambda ctx: ds))
  loops = {}
  for name, jit in (("no_xla", False), ("xla", True)):
    tr.cfg.jit_compile = jit
    loops[name] = tr.train_loop()
  print(peer_lib.machine_line(), flush=True)

  def run(name, steps):
    t0 = time.perf_counter()
    for _ in range(steps // args.steps_per_loop):
      loops[name](it, tf.constant(args.steps_per_loop))["loss_sum"].numpy()
    return steps / (time.perf_counter() - t0)

  for name in loops:
    t0 = time.perf_counter()
    run(name, args.warmup_steps)
    print(f"{name} warm-up (trace{' + XLA compile' if name == 'xla' else ''}): "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
  rates = {name: [] for name in loops}
  for r in range(args.rounds):
    order = ("no_xla", "xla") if r % 2 == 0 else ("xla", "no_xla")
    for name in order:
      rates[name].append(run(name, args.steps))
    print(f"round {r}: no XLA {rates['no_xla'][-1]:.2f} steps/s | XLA "
          f"{rates['xla'][-1]:.2f} steps/s | XLA/no XLA "
          f"{rates['xla'][-1] / rates['no_xla'][-1]:.2f}", flush=True)
  ratios = [x / n for x, n in zip(rates["xla"], rates["no_xla"])]
  ratio = statistics.median(ratios)
  verdict = ("XLA helps here: set TrainConfig.jit_compile = True" if ratio > 1.02 else
             "XLA hurts here: keep TrainConfig.jit_compile = False" if ratio < 0.98 else
             "XLA makes no measurable difference here")
  lines = ["| | steps/s (median) | per round |", "|---|---|---|"]
  for name in ("no_xla", "xla"):
    lines.append(f"| {name} | {statistics.median(rates[name]):.2f} | "
                 + ", ".join(f"{x:.2f}" for x in rates[name]) + " |")
  lines += ["", f"XLA / no XLA steps/s: median {ratio:.2f} (per round "
            + ", ".join(f"{x:.2f}" for x in ratios) + f"). {verdict}."]
  print("\n".join(["", *lines]), flush=True)
  if args.results != "none":
    path = args.results or os.path.join(ROOT, "benchmarks", "results", "xla_speed.md")
    body = [f"onemodel's train loop at base size (d_model 256, FFN 1024, 3+3 layers, dropout "
            f"{args.dropout}), batch {args.batch} x {args.length} -> {args.length}, vocab "
            f"{vocab_size}, random tokens; the same Trainer's loop built with "
            f"TrainConfig.jit_compile False and True; {args.rounds} rounds x {args.steps} "
            "steps per side, alternating.", "", *lines]
    peer_lib.write_results(path, "XLA on vs off: onemodel's train step", ROOT, body)
  shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
  main()

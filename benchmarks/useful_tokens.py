"""Useful (non-padding) target tokens/s on real Multi30k train data: onemodel's
token-budget bucketing and packing vs a keras-hub peer that pads each batch to its
longest sentence (bar: ours >= 1.5x the padded peer).

  PYTHONPATH=. python benchmarks/useful_tokens.py --manual_dir=../shared/data \
      [--rounds=5 --steps=50]

One process, one run, three trainers on the multi30k_en_de train split, all tokenized
with our Multi30k SentencePiece vocabulary (the peer gets the same ids):
- ours bucketed: `trainer.Trainer` with TrainConfig.batch_tokens (2048, as in
  gin/experiments/multi30k_en_de.gin): length buckets (batching.bucket_by_length), its own
  input pipeline and `Trainer.train_loop()`;
- ours packed: TrainConfig.pack=True with batch_size = batch_tokens / 64 rows of 64
  target positions (the same positions per batch);
- peer: the keras-hub model of speed_vs_peer.py, `model.fit` on batches of 64 sentences
  each padded to its longest source and longest target sentence (decoder input = targets
  shifted right; padding masked).
Model at base size (gin/models/base.gin) with dropout and label smoothing as the peer
(0; flags). After warm-up they alternate for --rounds rounds of --steps steps each
(order rotating); useful target tokens (labels != PAD, EOS included) per second, medians
and ratios ours/peer. Writes benchmarks/results/useful_tokens.md."""

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf

import peer_lib
from onemodel import data as data_lib
from onemodel import registry
from onemodel import trainer as trainer_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBLEM = "multi30k_en_de"


def peer_dataset(problem, data_dir, vocab, batch):
  """Our tokenized training examples, `batch` sentences per batch, each batch cut to its
  longest source and longest target (what a plain `padded_batch` pipeline gives)."""
  ds = data_lib.dataset(problem, "train", data_dir, batch, training=True, vocab=vocab,
                        seed=None)

  def to_peer(b):
    def longest(x):
      return tf.reduce_max(tf.reduce_sum(tf.cast(x != 0, tf.int32), axis=1))
    x = b["inputs"][:, :longest(b["inputs"])]
    y = b["targets"][:, :longest(b["targets"])]
    dec = tf.concat([tf.ones_like(y[:, :1]), y[:, :-1]], axis=1)  # start id 1, shifted
    return {"encoder_inputs": x, "decoder_inputs": dec}, y

  return ds.map(to_peer, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


class Ours:
  """One onemodel trainer on its real training pipeline."""

  def __init__(self, name, args, **cfg):
    self.name, self.spl = name, args.steps_per_loop
    c = trainer_lib.TrainConfig(problem=PROBLEM, steps_per_loop=self.spl,
                                jit_compile=args.jit, label_smoothing=args.label_smoothing,
                                report_mfu=False, train_steps=10 ** 6, **cfg)
    self.tr = trainer_lib.Trainer(tempfile.mkdtemp(prefix=f"useful_{name}_"),
                                  args.data_dir, args.manual_dir, cfg=c)
    self.its = self.tr.iterators()
    self.loop = self.tr.train_loop()

  def run(self, steps):
    """-> (steps/s, useful target tokens/s, target positions/s)."""
    t0 = time.perf_counter()
    tokens = positions = 0.0
    for _ in range(steps // self.spl):
      stats = self.loop(self.its[PROBLEM], tf.constant(self.spl))
      tokens += float(stats["tokens"])
      positions += float(stats["dec_tokens"])
    dt = time.perf_counter() - t0
    return steps / dt, tokens / dt, positions / dt


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--data_dir", default="/tmp/om_data")
  ap.add_argument("--manual_dir", default="../shared/data")
  ap.add_argument("--rounds", type=int, default=5)
  ap.add_argument("--steps", type=int, default=50, help="timed steps per round and side")
  ap.add_argument("--warmup_steps", type=int, default=20)
  ap.add_argument("--steps_per_loop", type=int, default=10)
  ap.add_argument("--batch_tokens", type=int, default=2048,
                  help="ours bucketed: tokens per batch (multi30k_en_de.gin)")
  ap.add_argument("--pack_rows", type=int, default=0,
                  help="ours packed: rows per batch (default batch_tokens / 64)")
  ap.add_argument("--peer_batch", type=int, default=64, help="peer: sentences per batch")
  ap.add_argument("--dropout", type=float, default=0.0)
  ap.add_argument("--label_smoothing", type=float, default=0.0)
  ap.add_argument("--jit", action="store_true",
                  help="XLA for ours only (the peer's batch shapes change every step)")
  ap.add_argument("--results", default="", help="default: benchmarks/results/"
                  "useful_tokens.md; 'none' to skip")
  args = ap.parse_args()
  peer_lib.setup_base_model(ap, args, ROOT)
  problem = registry.get_problem(PROBLEM)
  length = problem.targets.length
  pack_rows = args.pack_rows or max(args.batch_tokens // length, 1)
  sides = {"ours bucketed": Ours("bucketed", args, batch_tokens=args.batch_tokens),
           "ours packed": Ours("packed", args, pack=True, batch_size=pack_rows)}
  tr = sides["ours bucketed"].tr
  mcfg, vocab = tr.model.cfg, tr.vocab
  vocab_size = tr.model.target_embedding(PROBLEM).vocab_size
  peer = peer_lib.build_peer(vocab_size, length, mcfg.model_dim, mcfg.num_heads,
                             mcfg.ffn_dim, mcfg.num_encoder_layers, dropout=args.dropout)
  peer_ds = peer_dataset(problem, args.data_dir, vocab, args.peer_batch)
  timer = peer_lib.StepTimer()

  def run_peer(steps):
    peer_lib.fit_rates(peer, peer_ds, steps, timer)
    return timer.all_rates()

  run = {name: side.run for name, side in sides.items()}
  run["peer padded"] = run_peer
  print(peer_lib.machine_line(), flush=True)
  print(f"model: d_model {mcfg.model_dim}, {mcfg.num_heads} heads, FFN {mcfg.ffn_dim}, "
        f"{mcfg.num_encoder_layers}+{mcfg.num_decoder_layers} layers, dropout "
        f"{mcfg.dropout_rate}, label smoothing {args.label_smoothing}, vocab {vocab_size}; "
        f"ours bucketed: batch_tokens {args.batch_tokens}; ours packed: {pack_rows} rows x "
        f"{length}; peer: {args.peer_batch} sentences padded to the longest; "
        f"jit (ours)={args.jit}", flush=True)
  for name, fn in run.items():
    t0 = time.perf_counter()
    fn(args.warmup_steps)
    print(f"{name} warm-up: {time.perf_counter() - t0:.1f} s", flush=True)

  names = list(run)
  rows = {name: [] for name in names}
  for r in range(args.rounds):
    order = names[r % len(names):] + names[:r % len(names)]
    for name in order:
      rows[name].append(run[name](args.steps))
    print(f"round {r}: " + " | ".join(
        f"{n} {rows[n][-1][1]:,.0f} useful tok/s ({rows[n][-1][0]:.2f} steps/s)"
        for n in names), flush=True)

  peer_tok = [row[1] for row in rows["peer padded"]]
  table = ["| | steps/s | useful target tokens/s | target positions/s | useful share | "
           "ours/peer (useful tok/s) |", "|---|---|---|---|---|---|"]
  ratios = {}
  for name in names:
    sps = peer_lib.med([row[0] for row in rows[name]])
    tps = peer_lib.med([row[1] for row in rows[name]])
    pps = peer_lib.med([row[2] for row in rows[name]])
    per_round = [row[1] / p for row, p in zip(rows[name], peer_tok)]
    ratios[name] = peer_lib.med(per_round)
    share = sum(row[1] for row in rows[name]) / max(sum(row[2] for row in rows[name]), 1)
    table.append(f"| {name} | {sps:.2f} | {tps:,.0f} | {pps:,.0f} | {100 * share:.0f}% | "
                 f"{ratios[name]:.2f} |")
  best = max(ratios["ours bucketed"], ratios["ours packed"])
  lines = [*table, "",
           "ours/peer = median over rounds of (ours useful tok/s / peer useful tok/s in the "
           "same round); useful share = real target tokens / target positions computed.",
           f"bar: ours >= 1.5x the padded peer -> bucketed "
           f"{ratios['ours bucketed']:.2f}x, packed {ratios['ours packed']:.2f}x: "
           f"{'met' if best >= 1.5 else 'NOT met'}"]
  print("\n".join(["", *lines]), flush=True)
  if args.results != "none":
    path = args.results or os.path.join(ROOT, "benchmarks", "results", "useful_tokens.md")
    body = [f"Model: d_model {mcfg.model_dim}, {mcfg.num_heads} heads, FFN {mcfg.ffn_dim}, "
            f"{mcfg.num_encoder_layers}+{mcfg.num_decoder_layers} layers, dropout "
            f"{mcfg.dropout_rate}, label smoothing {args.label_smoothing}, vocab "
            f"{vocab_size} (Multi30k SentencePiece, same ids for the peer). Ours bucketed: "
            f"TrainConfig.batch_tokens={args.batch_tokens}; ours packed: TrainConfig.pack="
            f"True, {pack_rows} rows x {length}; peer: keras-hub, {args.peer_batch} "
            f"sentences per batch padded to the longest, `model.fit`. jit (ours)="
            f"{args.jit}. {args.rounds} rounds x {args.steps} steps per side after "
            f"{args.warmup_steps} warm-up steps, order rotating.", "", *lines]
    peer_lib.write_results(path, "Useful target tokens/s on real Multi30k: onemodel vs "
                           "padded keras-hub peer", ROOT, body)
  for side in sides.values():
    shutil.rmtree(side.tr.output_dir, ignore_errors=True)


if __name__ == "__main__":
  main()

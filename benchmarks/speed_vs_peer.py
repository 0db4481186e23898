"""Same-shape training speed: onemodel's training loop vs a keras-hub peer.

  PYTHONPATH=. python benchmarks/speed_vs_peer.py --manual_dir=../shared/data \
      [--rounds=5 --steps=50] [--jit]

In one process and one run:
1. the machine's fp32 matmul peak (onemodel.throughput.measure_peak_gflops at 1024 and
   2048, the best of the two; each matmul's input is the previous result, so XLA or
   grappler cannot hoist it), measured again in every round;
2. OURS: a `trainer.Trainer` on multi30k_en_de at base size (gin/models/base.gin:
   d_model 256, 4 heads, FFN 1024, 3+3 layers; dropout as the peer: 0), its own
   `Trainer.train_loop()` tf.function (GradientTape, global-norm clipping, AdamW) run
   `--steps_per_loop` steps per call on random tokens {'inputs': [64, 32],
   'targets': [64, 32]}, ids in [3, vocab), vocab = the Multi30k SentencePiece size;
3. PEER: keras-hub TokenAndPositionEmbedding + TransformerEncoder x3 +
   TransformerDecoder x3 + Dense(vocab, softmax), AdamW, sparse CE, `model.fit` on the
   same random tokens (decoder inputs = targets shifted right), steps_per_execution 1.
Both warm up (trace) first, then alternate for --rounds rounds of --steps steps (the
order flips every round). Prints per round and the medians: steps/s, target tokens/s,
model GFLOP/s (one formula for both, printed), MFU against that round's peak, and the
ratio ours/peer. --jit: XLA for both (TrainConfig.jit_compile, compile(jit_compile=True)).
Writes benchmarks/results/speed_vs_peer[_jit].md."""

import argparse
import os
import shutil
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf

import peer_lib
from onemodel import throughput
from onemodel import trainer as trainer_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBLEM = "multi30k_en_de"


def synthetic_batches(n, batch, length, vocab_size, seed=0):
  """`n` different [batch, length] token batches (ids in [3, vocab)), inputs and targets."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(3, vocab_size, size=(n, 2, batch, length)).astype(np.int32)
  return ids[:, 0], ids[:, 1]


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--data_dir", default="/tmp/om_data")
  ap.add_argument("--manual_dir", default="../shared/data")
  ap.add_argument("--rounds", type=int, default=5)
  ap.add_argument("--steps", type=int, default=50, help="timed steps per round and side")
  ap.add_argument("--warmup_steps", type=int, default=10)
  ap.add_argument("--steps_per_loop", type=int, default=10)
  ap.add_argument("--batch", type=int, default=64)
  ap.add_argument("--length", type=int, default=32, help="source and target length")
  ap.add_argument("--dropout", type=float, default=0.0,
                  help="both models (keras-hub layers default to 0)")
  ap.add_argument("--jit", action="store_true", help="XLA for ours and the peer")
  ap.add_argument("--results", default="", help="default: benchmarks/results/"
                  "speed_vs_peer[_jit].md; 'none' to skip")
  args = ap.parse_args()
  peer_lib.setup_base_model(ap, args, ROOT)
  cfg = trainer_lib.TrainConfig(problem=PROBLEM, batch_size=args.batch,
                                steps_per_loop=args.steps_per_loop, jit_compile=args.jit,
                                report_mfu=False, train_steps=10 ** 6)
  out_dir = tempfile.mkdtemp(prefix="speed_vs_peer_")
  tr = trainer_lib.Trainer(out_dir, args.data_dir, args.manual_dir, cfg=cfg)
  mcfg = tr.model.cfg
  vocab_size = tr.model.target_embedding(PROBLEM).vocab_size
  b, n = args.batch, args.length
  print(peer_lib.machine_line(), flush=True)
  print(f"config: d_model {mcfg.model_dim}, {mcfg.num_heads} heads, FFN {mcfg.ffn_dim}, "
        f"{mcfg.num_encoder_layers}+{mcfg.num_decoder_layers} layers, dropout "
        f"{mcfg.dropout_rate}, vocab {vocab_size} (the {PROBLEM} SentencePiece vocab; "
        f"peer built with the same), batch {b} x source {n} -> target {n}, "
        f"jit={args.jit}", flush=True)

  inputs, targets = synthetic_batches(8, b, n, vocab_size)
  ours_ds = tf.data.Dataset.from_tensor_slices(
      {"inputs": inputs, "targets": targets}).repeat().prefetch(2)
  # Peer: the same tokens; decoder input = targets shifted right behind a start id (1).
  dec_in = np.concatenate([np.ones_like(targets[:, :, :1]), targets[:, :, :-1]], axis=2)
  peer_ds = tf.data.Dataset.from_tensor_slices(
      ({"encoder_inputs": inputs, "decoder_inputs": dec_in}, targets)).repeat().prefetch(2)

  # OURS: the trainer's own loop on an iterator of the synthetic batches.
  it = iter(tr.strategy.distribute_datasets_from_function(lambda ctx: ours_ds))
  loop = tr.train_loop()
  # PEER
  peer = peer_lib.build_peer(vocab_size, n, mcfg.model_dim, mcfg.num_heads, mcfg.ffn_dim,
                             mcfg.num_encoder_layers, dropout=args.dropout, jit=args.jit)
  timer = peer_lib.StepTimer()

  # FLOPs: one formula for both; weight counts checked against both models.
  shapes = peer_lib.shape_stats(b, n, n)
  flops = throughput.step_flops(mcfg, shapes, vocab_size)
  d, f = mcfg.model_dim, mcfg.ffn_dim
  formula_w = {"encoder": mcfg.num_encoder_layers * throughput.layer_weights(d, f, False),
               "decoder": mcfg.num_decoder_layers * throughput.layer_weights(d, f, True)}
  ours_w, peer_w = peer_lib.ours_matmul_weights(tr.model), peer_lib.peer_matmul_weights(peer)
  print(peer_lib.FLOP_FORMULA)
  print(f"matmul weights counted: encoder {formula_w['encoder']:,}, decoder "
        f"{formula_w['decoder']:,}, output projection {d * vocab_size:,} (D x V)")
  print(f"  ours (model): encoder {ours_w['encoder']:,}, decoder {ours_w['decoder']:,}, "
        f"output tied to the embedding ({d * vocab_size:,})")
  print(f"  peer (model): encoder {peer_w['encoder']:,}, decoder {peer_w['decoder']:,}, "
        f"output Dense {peer_w['output']:,} (untied; same matmul FLOPs)")
  print(f"model FLOPs per step: {flops / 1e9:.2f} GFLOP ({b * n} target tokens)", flush=True)

  def run_ours(steps):
    t0 = time.perf_counter()
    tokens = 0.0
    for _ in range(steps // args.steps_per_loop):
      stats = loop(it, tf.constant(args.steps_per_loop))
      tokens += float(stats["tokens"])
    dt = time.perf_counter() - t0
    return steps / dt, tokens / dt

  def run_peer(steps):
    return peer_lib.fit_rates(peer, peer_ds, steps, timer)

  t0 = time.perf_counter()
  run_ours(args.warmup_steps)
  print(f"ours warm-up (trace{' + XLA compile' if args.jit else ''}): "
        f"{time.perf_counter() - t0:.1f} s", flush=True)
  t0 = time.perf_counter()
  run_peer(args.warmup_steps)
  print(f"peer warm-up: {time.perf_counter() - t0:.1f} s", flush=True)

  rows = {"ours": [], "peer": []}
  peaks = []
  for r in range(args.rounds):
    pk, sizes = peer_lib.peak()
    peaks.append(pk)
    order = ("ours", "peer") if r % 2 == 0 else ("peer", "ours")
    for who in order:
      sps, tps = run_ours(args.steps) if who == "ours" else run_peer(args.steps)
      gf = sps * flops / 1e9
      rows[who].append((sps, tps, gf, gf / pk))
    o, p = rows["ours"][-1], rows["peer"][-1]
    print(f"round {r}: peak {pk:.0f} GFLOP/s ("
          + ", ".join(f"n={k}: {v:.0f}" for k, v in sizes.items()) + f") | ours "
          f"{o[0]:.2f} steps/s, MFU {100 * o[3]:.0f}% | peer {p[0]:.2f} steps/s, MFU "
          f"{100 * p[3]:.0f}% | ours/peer {o[0] / p[0]:.2f}", flush=True)

  ratios = [o[0] / p[0] for o, p in zip(rows["ours"], rows["peer"])]
  pk = peer_lib.med(peaks)
  table = ["| | steps/s | target tokens/s | model GFLOP/s | MFU |", "|---|---|---|---|---|"]
  for who in ("ours", "peer"):
    m = [peer_lib.med([row[i] for row in rows[who]]) for i in range(4)]
    table.append(f"| {who} | {m[0]:.2f} | {m[1]:,.0f} | {m[2]:.0f} | {100 * m[3]:.0f}% |")
  ratio = statistics.median(ratios)
  lines = [f"matmul peak (median of rounds): {pk:.0f} GFLOP/s fp32", "",
           *table, "",
           f"ours/peer steps/s: median {ratio:.2f} (per round "
           + ", ".join(f"{x:.2f}" for x in ratios) + ")",
           f"model FLOPs per step: {flops / 1e9:.2f} GFLOP "
           f"(batch {b}, source {n}, target {n}, vocab {vocab_size}); MFU per round "
           "= model GFLOP/s / that round's peak, then the median",
           f"bars: ours/peer >= 1.0 -> {'met' if ratio >= 1.0 else 'NOT met'};"
           f" ours MFU >= 60% -> "
           f"{'met' if peer_lib.med([r[3] for r in rows['ours']]) >= 0.6 else 'NOT met'}"]
  print("\n".join(["", *lines]), flush=True)
  if args.results != "none":
    path = args.results or os.path.join(
        ROOT, "benchmarks", "results", f"speed_vs_peer{'_jit' if args.jit else ''}.md")
    body = [f"Config: d_model {mcfg.model_dim}, {mcfg.num_heads} heads, FFN {mcfg.ffn_dim}, "
            f"{mcfg.num_encoder_layers}+{mcfg.num_decoder_layers} layers, dropout "
            f"{mcfg.dropout_rate}, vocab {vocab_size}, batch {b} x {n} -> {n}, random "
            f"tokens, jit={args.jit}; {args.rounds} rounds x {args.steps} steps per side "
            f"after {args.warmup_steps} warm-up steps, alternating.", "",
            *lines, "", "```", peer_lib.FLOP_FORMULA, "```"]
    peer_lib.write_results(path, "Same-shape training speed: onemodel vs keras-hub peer",
                           ROOT, body)
  shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
  main()

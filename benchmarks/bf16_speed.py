"""Training steps/s in float32 vs mixed_bfloat16, same model size and batch, one process.

  PYTHONPATH=. python benchmarks/bf16_speed.py [--rounds 5 --steps 5 --jit]

A base-size text->text model (model_dim 256, 4 heads, ffn 1024, 3+3 layers, vocab 8000;
random weights: speed does not depend on them) takes full training steps (forward, loss,
gradients, AdamW update) on batches of 64 x 32 tokens. The two precisions alternate, in
`--rounds` rounds of `--steps` timed steps each after one warm-up (tracing) step, so
machine noise hits both alike; prints each one's median steps/s and their ratio."""

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
import numpy as np
import tensorflow as tf

from onemodel import backbone as backbone_lib
from onemodel import model as model_lib
from onemodel import precision
from onemodel import problem as problem_lib


def make_step(policy, cfg, problem, vocab_size, batch, jit):
  keras.utils.set_random_seed(0)
  precision.apply(policy)
  try:
    model = model_lib.OneModel([problem], {problem.name: type("V", (), {
        "vocab_size": vocab_size})()}, cfg)
    model(batch, problem=problem.name)
    opt = keras.optimizers.AdamW(1e-4)
    opt.build(model.trainable_variables)
  finally:
    precision.reset()

  @tf.function(jit_compile=jit)
  def step(b):
    with tf.GradientTape() as tape:
      s, c = model_lib.token_loss(model(b, problem=problem.name, training=True),
                                  b["targets"])
      loss = s / c
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  return step


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--batch", type=int, default=64)
  ap.add_argument("--length", type=int, default=32)
  ap.add_argument("--vocab_size", type=int, default=8000)
  ap.add_argument("--rounds", type=int, default=5)
  ap.add_argument("--steps", type=int, default=5)
  ap.add_argument("--jit", action="store_true", help="tf.function(jit_compile=True)")
  args = ap.parse_args()
  cfg = backbone_lib.BackboneConfig(model_dim=256, num_heads=4, ffn_dim=1024,
                                    num_encoder_layers=3, num_decoder_layers=3,
                                    dropout_rate=0.1)
  spec = problem_lib.FeatureSpec("text", length=args.length, vocab=problem_lib.VocabSpec())
  problem = problem_lib.Problem(name="bench", builder=None, raw_subdir="", inputs=spec,
                                targets=spec, splits={}, metrics=(), to_raw=None)
  rng = np.random.default_rng(0)
  # A few different batches, cycled, so no step can reuse another's result.
  batches = []
  for _ in range(4):
    ids = rng.integers(3, args.vocab_size, size=(args.batch, args.length)).astype(np.int32)
    ids[:, -1] = 1
    batches.append({"inputs": tf.constant(ids), "targets": tf.constant(ids[:, ::-1].copy())})
  steps = {p: make_step(p, cfg, problem, args.vocab_size, batches[0], args.jit)
           for p in ("float32", "mixed_bfloat16")}
  print(f"machine: {platform.machine()}, {os.cpu_count()} cores; TF {tf.__version__}; "
        f"d256 h4 ffn1024 3+3 layers, vocab {args.vocab_size}, batch {args.batch}x"
        f"{args.length}, jit_compile={args.jit}", flush=True)
  for p, step in steps.items():
    print(f"{p}: warm-up loss {float(step(batches[0])):.4f}", flush=True)
  rates = {p: [] for p in steps}
  for r in range(args.rounds):
    for p, step in steps.items():
      t0 = time.perf_counter()
      for i in range(args.steps):
        loss = step(batches[i % len(batches)])
      float(loss)
      rates[p].append(args.steps / (time.perf_counter() - t0))
    print(f"round {r}: " + ", ".join(f"{p} {rates[p][-1]:.2f} steps/s" for p in steps),
          flush=True)
  f32, bf16 = (statistics.median(rates[p]) for p in ("float32", "mixed_bfloat16"))
  ratios = [b / f for f, b in zip(rates["float32"], rates["mixed_bfloat16"])]
  print(f"median steps/s: float32 {f32:.2f}, mixed_bfloat16 {bf16:.2f}; "
        f"bf16/f32 = {bf16 / f32:.2f} (per-round ratios "
        f"{', '.join(f'{x:.2f}' for x in ratios)})")


if __name__ == "__main__":
  main()

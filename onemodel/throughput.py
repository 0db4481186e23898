"""Throughput: model FLOPs of a training step, and the machine's measured matmul peak, so
every training log can say how far it is from the hardware (MFU).

FLOP formula (training = 3 x forward: one forward, two backward matmuls per weight):
  6 x non-embedding weights x tokens      (each weight: one multiply-add per token)
+ 6 x 2 x Lq x Lk x D per attention layer (QK^T and AV, each 2 Lq Lk D forward)
+ 6 x D x V per target token              (the tied softmax projection)
as in Kaplan et al. 2020 (arXiv:2001.08361, Table 1) and PaLM (arXiv:2204.02311, App. B),
split into encoder and decoder parts. Input adapters (patch/conv stems) are not counted.
"""

import json
import os
import platform
import statistics
import time
from typing import Dict

import tensorflow as tf


def layer_weights(model_dim: int, ffn_dim: int, cross: bool) -> int:
  """Matmul weights of one block: Q, K, V, O (and cross-attention's) + the FFN."""
  attn = 4 * model_dim * model_dim
  return attn * (2 if cross else 1) + 2 * model_dim * ffn_dim


def step_flops(cfg, shapes: Dict[str, float], vocab_size: int) -> float:
  """Training FLOPs of one step from summed shape statistics of its batch:
  enc_tokens = sum of B*S, dec_tokens = sum of B*T, enc_attn = sum of B*S*S,
  dec_attn = sum of B*T*T, cross_attn = sum of B*T*S."""
  d, f = cfg.model_dim, cfg.ffn_dim
  enc = shapes.get("enc_tokens", 0.0)
  dec = shapes.get("dec_tokens", 0.0)
  has_enc = enc > 0
  # A mixture-of-experts FFN: each token goes through top-k experts plus the router.
  moe_extra = 0
  if getattr(cfg, "ffn", "dense") == "moe":
    moe_extra = (cfg.expert_top_k - 1) * 2 * d * f + d * cfg.num_experts
  flops = 6 * (layer_weights(d, f, False) + moe_extra) * cfg.num_encoder_layers * enc
  flops += 6 * (layer_weights(d, f, has_enc) + moe_extra) * cfg.num_decoder_layers * dec
  flops += 6 * 2 * 2 * d * (cfg.num_encoder_layers * shapes.get("enc_attn", 0.0) +
                            cfg.num_decoder_layers * (shapes.get("dec_attn", 0.0) +
                                                      shapes.get("cross_attn", 0.0)))
  flops += 6 * d * vocab_size * dec
  return float(flops)


def batch_shapes(enc_len, dec_len, batch) -> Dict[str, tf.Tensor]:
  """The shape statistics `step_flops` takes, for one [B, S] / [B, T] batch (in-graph)."""
  b = tf.cast(batch, tf.float32)
  s = tf.cast(enc_len, tf.float32)
  t = tf.cast(dec_len, tf.float32)
  return {"enc_tokens": b * s, "dec_tokens": b * t, "enc_attn": b * s * s,
          "dec_attn": b * t * t, "cross_attn": b * t * s}


def _cache_path():
  d = os.path.join(os.path.expanduser("~"), ".cache", "onemodel")
  return os.path.join(d, f"peak_{platform.node()}_{os.cpu_count()}cpu.json")


def measure_peak_gflops(n: int = 1024, seconds: float = 1.5) -> float:
  """fp32 matmul GFLOP/s (median over repeats). Each iteration's input depends on the
  previous result, so XLA/grappler cannot hoist the matmul out of the loop."""
  a = tf.random.normal([n, n])
  b = tf.random.normal([n, n]) / n ** 0.5

  @tf.function
  def chain(x, steps):
    for _ in tf.range(steps):
      x = tf.matmul(x, b) * 0.5 + a * 0.5
    return x

  chain(a, tf.constant(2)).numpy()
  steps = 4
  t0 = time.perf_counter()
  chain(a, tf.constant(steps)).numpy()
  per = (time.perf_counter() - t0) / steps
  steps = max(int(seconds / 3 / max(per, 1e-6)), 2)
  rates = []
  for _ in range(3):
    t0 = time.perf_counter()
    chain(a, tf.constant(steps)).numpy()
    rates.append(2 * n ** 3 * steps / (time.perf_counter() - t0) / 1e9)
  return statistics.median(rates)


def peak_gflops(refresh: bool = False) -> float:
  """The machine's matmul peak, measured once and cached per machine."""
  path = _cache_path()
  if not refresh and os.path.exists(path):
    try:
      return float(json.load(open(path))["gflops"])
    except (ValueError, KeyError, OSError):
      pass
  value = measure_peak_gflops()
  try:
    from onemodel import fileio
    fileio.atomic_write_json(path, {"gflops": value, "measured": time.time()})
  except OSError:
    pass
  return value


def report_peak(wanted: bool) -> float:
  """The peak a run's MFU is measured against (0.0: not wanted), printed once."""
  if not wanted:
    return 0.0
  peak = peak_gflops()
  print(f"matmul peak of this machine: {peak:.0f} GFLOP/s (fp32; MFU is measured "
        "against it)", flush=True)
  return peak

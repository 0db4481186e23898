"""Mixture-of-experts feed-forward layer: a drop-in for backbone.FeedForward.

Routing (Switch Transformer, Fedus et al. 2021, arXiv:2101.03961; GShard, Lepikhin et al.
2020, arXiv:2006.16668): a linear router gives each token a softmax over `num_experts`;
each token goes to its top-k experts (k=1: Switch, gate = router probability; k=2: GShard,
the two gates renormalized to sum to 1). Every expert takes at most

  capacity = ceil(k * tokens * capacity_factor / num_experts)

tokens per call (tokens = all positions of the [B, L] batch, padding included: a static
shape; padding itself is never routed, so it takes no capacity, and the model passes the
padding mask of both the encoder and the decoder). Tokens are served in order, first
choices of all tokens before second choices; an assignment beyond capacity is dropped
(its gate contributes 0, so the token passes through the block's residual connection
only). Dropping happens only with `training=True`; at
inference capacity is unlimited, so full decoding and step-by-step decoding agree.

Load balance (Switch form): aux = num_experts * sum_i f_i * P_i, with f_i the fraction of
tokens whose first choice is expert i and P_i the mean router probability of expert i
(over real tokens). It equals 1.0 for perfectly uniform routing and grows with skew.

Reading the auxiliary loss in a custom GradientTape loop: each call stores tensors on the
layer (`aux_loss`, `dropped_tokens`, ...). Inside the tape, right after the forward pass:

    moe.reset_aux(model)                 # before the forward: forget stale values
    logits = model(batch, training=True)
    aux = moe.collect_aux(model)         # same trace / replica function as the forward
    loss = main_loss + aux["loss"]       # aux["loss"] = sum_l moe_aux_weight * aux_l

Scale `aux["loss"]` like the main loss: divide by the replica count under a strategy that
sums replica gradients, and by the accumulation steps when accumulating gradients.
"""

import math
from typing import Dict

import keras
import tensorflow as tf

from onemodel import dropout as dropout_lib


class MoEFeedForward(keras.layers.Layer):
  """[B, L, D] -> [B, L, D]; `num_experts` GELU FFNs of width `ffn_dim`, top-k routed.

  After each call: `aux_loss` (balance loss, scalar), `dropped_tokens` (real tokens with
  none of their k choices served), `dropped_assignments` (dropped token-choices),
  `routed_tokens` (real tokens), `expert_counts` ([E] assignments served per expert),
  `capacity` (per expert); `aux_weight` is the weight `collect_aux` applies."""

  def __init__(self, model_dim, ffn_dim, dropout_rate=0.0, num_experts=8, top_k=1,
               capacity_factor=1.25, aux_weight=0.01, **kwargs):
    super().__init__(**kwargs)
    if not 1 <= top_k <= num_experts:
      raise ValueError(f"expert_top_k={top_k} must be in [1, num_experts={num_experts}]")
    self.model_dim, self.ffn_dim = model_dim, ffn_dim
    self.num_experts, self.top_k = num_experts, top_k
    self.capacity_factor, self.aux_weight = capacity_factor, aux_weight
    self.router = keras.layers.Dense(num_experts, use_bias=False, name="router")
    self.dropout = dropout_lib.Dropout(dropout_rate)
    self.aux_loss = self.dropped_tokens = self.dropped_assignments = None
    self.routed_tokens = self.expert_counts = self.capacity = None

  def build(self, input_shape=None):
    # Weights are made here, not in __init__, so that their paths carry the enclosing
    # layers' names (encoder_0/ffn/...), as the Dense sublayers' do.
    e, d, f = self.num_experts, self.model_dim, self.ffn_dim
    init = lambda a, b: keras.initializers.RandomUniform(  # Glorot per expert matrix
        -math.sqrt(6.0 / (a + b)), math.sqrt(6.0 / (a + b)))
    self.inner_kernel = self.add_weight(shape=(e, d, f), initializer=init(d, f),
                                        name="expert_inner_kernel")
    self.inner_bias = self.add_weight(shape=(e, f), initializer="zeros",
                                      name="expert_inner_bias")
    self.outer_kernel = self.add_weight(shape=(e, f, d), initializer=init(f, d),
                                        name="expert_outer_kernel")
    self.outer_bias = self.add_weight(shape=(e, d), initializer="zeros",
                                      name="expert_outer_bias")
    self.built = True

  @property
  def prunable_weights(self):
    """Expert kernels ([E, in, out]) for pruning.Pruner (the router is not pruned)."""
    return [self.inner_kernel, self.outer_kernel] if self.built else []

  def expert_capacity(self, num_tokens, training=True):
    """Per-expert capacity for `num_tokens` positions (int or scalar tensor)."""
    if not training or self.capacity_factor <= 0:
      return num_tokens
    c = self.top_k * self.capacity_factor / self.num_experts
    if isinstance(num_tokens, int):
      return max(int(math.ceil(num_tokens * c)), 1)
    return tf.maximum(tf.cast(tf.math.ceil(tf.cast(num_tokens, tf.float32) * c),
                              tf.int32), 1)

  def route(self, probs, mask, capacity):
    """probs [N, E], mask [N] (1 = real) -> (slots [k, N] in [0, E*C] where E*C means
    dropped, gates [k, N] (0 where dropped), statistics dict)."""
    e, k = self.num_experts, self.top_k
    top_p, top_i = tf.math.top_k(probs, k)                          # [N, k]
    gates = top_p if k == 1 else top_p / tf.reduce_sum(top_p, -1, keepdims=True)
    real = mask > 0
    filled = tf.zeros([e], tf.int32)                                # per-expert fill
    slots, kept_gates, kept = [], [], []
    for j in range(k):
      onehot = tf.one_hot(top_i[:, j], e, dtype=tf.int32) * tf.cast(real, tf.int32)[:, None]
      pos = tf.cumsum(onehot, axis=0, exclusive=True) + filled[None, :]  # [N, E]
      pos = tf.reduce_sum(pos * onehot, axis=-1)                    # [N]
      keep = real & (pos < capacity)
      filled += tf.reduce_sum(onehot, axis=0)
      slots.append(tf.where(keep, top_i[:, j] * capacity + pos, e * capacity))
      kept_gates.append(gates[:, j] * tf.cast(keep, gates.dtype))
      kept.append(keep)
    kept = tf.stack(kept)                                           # [k, N]
    realf = tf.cast(real, tf.float32)
    n_real = tf.maximum(tf.reduce_sum(realf), 1.0)
    # Switch balance loss: E * sum_i f_i P_i (first choices, before capacity).
    f = tf.reduce_sum(tf.one_hot(top_i[:, 0], e) * realf[:, None], 0) / n_real
    p = tf.reduce_sum(tf.cast(probs, tf.float32) * realf[:, None], 0) / n_real
    stats = {
        "aux_loss": float(e) * tf.reduce_sum(f * p),
        "dropped_tokens": tf.reduce_sum(
            realf * (1.0 - tf.cast(tf.reduce_any(kept, 0), tf.float32))),
        "dropped_assignments": tf.reduce_sum(
            realf[None] * (1.0 - tf.cast(kept, tf.float32))),
        "routed_tokens": tf.reduce_sum(realf),
        "expert_counts": tf.reduce_sum(
            tf.one_hot(tf.stack(slots) // capacity, e + 1)[..., :e], [0, 1]),
    }
    return tf.stack(slots), tf.stack(kept_gates), stats

  def call(self, x, training=False, token_mask=None):
    """x: [B, L, D]; token_mask: optional [B, L] (1 = real token; padding is not routed).
    (Not Keras' `mask` argument, which Keras would try to propagate.)"""
    d, e = self.model_dim, self.num_experts
    shape = tf.shape(x)
    xf = tf.reshape(x, [-1, d])                                     # [N, D]
    static_n = None
    if x.shape[0] is not None and x.shape[1] is not None:
      static_n = int(x.shape[0]) * int(x.shape[1])
    n = static_n if static_n is not None else tf.shape(xf)[0]
    capacity = self.expert_capacity(n, training)
    m = tf.ones([n]) if token_mask is None else \
        tf.reshape(tf.cast(token_mask, tf.float32), [-1])
    probs = tf.nn.softmax(tf.cast(self.router(xf), tf.float32), axis=-1)
    slots, gates, stats = self.route(probs, m, capacity)             # [k, N] each
    # Dispatch: scatter tokens into [E * C (+1 overflow row), D] expert buffers.
    flat_slots = tf.reshape(slots, [-1, 1])
    values = tf.tile(xf, [self.top_k, 1])
    buf = tf.scatter_nd(flat_slots, values, tf.stack([e * capacity + 1, d]))
    expert_in = tf.reshape(buf[:-1], tf.stack([e, capacity, d]))     # [E, C, D]
    h = tf.einsum("ecd,edf->ecf", expert_in, self.inner_kernel) + self.inner_bias[:, None]
    h = self.dropout(tf.nn.gelu(h, approximate=False), training=training)
    out = tf.einsum("ecf,efd->ecd", h, self.outer_kernel) + self.outer_bias[:, None]
    out = tf.concat([tf.reshape(out, [-1, d]), tf.zeros([1, d], out.dtype)], 0)
    y = tf.reduce_sum(tf.gather(out, slots) * tf.cast(gates, out.dtype)[..., None], 0)
    for key, value in stats.items():
      setattr(self, key, value)
    self.capacity = capacity
    return tf.reshape(y, shape)


def from_config(cfg, name="ffn") -> MoEFeedForward:
  """The MoE FFN a backbone.BackboneConfig asks for (ffn='moe')."""
  return MoEFeedForward(cfg.model_dim, cfg.ffn_dim, cfg.dropout_rate,
                        num_experts=cfg.num_experts, top_k=cfg.expert_top_k,
                        capacity_factor=cfg.capacity_factor,
                        aux_weight=cfg.moe_aux_weight, name=name)


def moe_layers(model):
  """The MoE feed-forward layers of a OneModel (or of a bare backbone.Backbone)."""
  backbone = getattr(model, "backbone", model)
  return [f for f in backbone.feed_forwards() if isinstance(f, MoEFeedForward)]


def reset_aux(model) -> None:
  """Forgets every MoE layer's statistics (call before the forward pass)."""
  for layer in moe_layers(model):
    layer.aux_loss = layer.dropped_tokens = layer.dropped_assignments = None
    layer.routed_tokens = layer.expert_counts = None


def collect_aux(model) -> Dict[str, tf.Tensor]:
  """Sums the MoE layers' statistics from the last forward pass (layers not called since
  `reset_aux` are skipped). -> {'loss': sum of aux_weight x balance loss (add it to the
  training loss), 'balance_loss': mean balance loss, 'dropped_tokens', 'routed_tokens',
  'num_layers'}; all zeros without MoE layers."""
  called = [l for l in moe_layers(model) if l.aux_loss is not None]
  zero = tf.constant(0.0)
  if not called:
    return {"loss": zero, "balance_loss": zero, "dropped_tokens": zero,
            "routed_tokens": zero, "num_layers": 0}
  return {"loss": tf.add_n([l.aux_weight * l.aux_loss for l in called]),
          "balance_loss": tf.add_n([l.aux_loss for l in called]) / len(called),
          "dropped_tokens": tf.add_n([l.dropped_tokens for l in called]),
          "routed_tokens": tf.add_n([l.routed_tokens for l in called]),
          "num_layers": len(called)}


def params_and_flops(cfg) -> Dict[str, Dict[str, float]]:
  """Parameters vs forward FLOPs per token of the backbone's matmuls, dense vs MoE.

  Counts matmul weights and FFN biases (not LayerNorms); FLOPs = 2 per multiply-add, for
  one token through every encoder and every decoder layer (attention scores, which grow
  with length, are left out; see throughput.py for a step's total). An MoE FFN layer has
  E x (2DF + F + D) + DE parameters, but a token only uses k experts and the router:
  2 x (k x 2DF + DE) FLOPs. -> {'dense': {...}, 'moe': {...}, 'ratio': {...}}, each with
  'ffn_params' / 'ffn_flops_per_token' (one layer) and 'params' / 'flops_per_token'
  (whole backbone)."""
  d, f = cfg.model_dim, cfg.ffn_dim
  e, k = cfg.num_experts, cfg.expert_top_k
  n_layers = cfg.num_encoder_layers + cfg.num_decoder_layers
  attn = 4 * d * d * (cfg.num_encoder_layers + 2 * cfg.num_decoder_layers)
  out = {}
  for kind, params, active in (
      ("dense", 2 * d * f + f + d, 2 * d * f),
      ("moe", e * (2 * d * f + f + d) + d * e, k * 2 * d * f + d * e)):
    out[kind] = {"ffn_params": params, "ffn_flops_per_token": 2 * active,
                 "params": attn + n_layers * params,
                 "flops_per_token": 2 * (attn + n_layers * active)}
  out["ratio"] = {key: out["moe"][key] / out["dense"][key] for key in out["dense"]}
  return out

"""The shared Transformer backbone. It sees [B, L, D] sequences and masks, nothing else.

Pre-layer-norm encoder-decoder (Vaswani et al. 2017, with the pre-LN placement of
Xiong et al. 2020, arXiv:2002.04745, which trains without a long warmup). The encoder
may be absent (`encoder_out=None`): the decoder then runs as a language model and its
cross-attention sublayers are skipped, so language modelling shares the same weights.
"""

import dataclasses
import math
from typing import Optional

import gin
import keras
import tensorflow as tf

from onemodel import dropout as dropout_lib
from onemodel import errors
from onemodel import moe as moe_lib


@gin.configurable
@dataclasses.dataclass
class BackboneConfig:
  """Sizes of the shared backbone (see gin/models/*.gin)."""
  model_dim: int = 128
  num_heads: int = 4
  ffn_dim: int = 512
  num_encoder_layers: int = 2
  num_decoder_layers: int = 2
  dropout_rate: float = 0.1
  attention_dropout_rate: float = 0.0
  # Feed-forward sublayer: 'dense' (FeedForward) or 'moe' (moe.MoEFeedForward; the
  # trainer adds moe.collect_aux(model)['loss'] to the loss, see onemodel/moe.py).
  ffn: str = "dense"
  num_experts: int = 8
  expert_top_k: int = 1             # 1: Switch routing, 2: GShard top-2
  capacity_factor: float = 1.25     # <= 0: no capacity limit (no token dropped)
  moe_aux_weight: float = 0.01      # weight of the load-balancing loss per MoE layer

  def __post_init__(self):
    errors.check_field_types(self, "BackboneConfig")
    if self.ffn not in ("dense", "moe"):
      raise errors.UserError(f"gin binding BackboneConfig.ffn={self.ffn!r}: use 'dense' "
                             "or 'moe'")


def segment_mask(query_segments, key_segments, dtype=tf.float32):
  """[B, Lq], [B, Lk] segment ids -> [B, 1, Lq, Lk]: 1 where both are the same segment."""
  same = tf.equal(query_segments[:, :, tf.newaxis], key_segments[:, tf.newaxis, :])
  return tf.cast(same, dtype)[:, tf.newaxis]


class Attention(keras.layers.Layer):
  """Multi-head dot-product attention; `mask` is broadcastable to [B, H, Lq, Lk]."""

  def __init__(self, model_dim, num_heads, dropout_rate=0.0, **kwargs):
    super().__init__(**kwargs)
    if model_dim % num_heads:
      raise ValueError(f"model_dim {model_dim} is not divisible by num_heads {num_heads}")
    self.num_heads = num_heads
    self.head_dim = model_dim // num_heads
    self.query = keras.layers.Dense(model_dim, use_bias=False, name="query")
    self.key = keras.layers.Dense(model_dim, use_bias=False, name="key")
    self.value = keras.layers.Dense(model_dim, use_bias=False, name="value")
    self.out = keras.layers.Dense(model_dim, use_bias=False, name="out")
    self.dropout = dropout_lib.Dropout(dropout_rate)
    self.built = True  # sublayers build on first call

  def _split(self, x):
    b, l = tf.shape(x)[0], tf.shape(x)[1]
    # [B, L, D] -> [B, L, H, K] -> [B, H, L, K]
    return tf.transpose(tf.reshape(x, [b, l, self.num_heads, self.head_dim]), [0, 2, 1, 3])

  def project_kv(self, context):
    """[B, S, D] -> keys and values, each [B, H, S, K]."""
    return self._split(self.key(context)), self._split(self.value(context))

  def attend(self, x, k, v, mask, training=False):
    """Queries from x [B, Lq, D] over given keys/values [B, H, Lk, K] -> [B, Lq, D]."""
    q = self._split(self.query(x)) * (1.0 / math.sqrt(self.head_dim))
    logits = tf.einsum("bhqk,bhsk->bhqs", q, k)  # [B, H, Lq, Lk]
    # Mask and softmax in float32 (a no-op cast unless under mixed precision).
    logits = tf.cast(logits, tf.float32)
    # Masked positions get a large negative logit (not -inf: a fully masked row stays
    # finite instead of turning into NaN).
    logits += (1.0 - tf.cast(mask, tf.float32)) * -1e9
    weights = tf.cast(tf.nn.softmax(logits, axis=-1), v.dtype)
    weights = self.dropout(weights, training=training)
    y = tf.einsum("bhqs,bhsk->bhqk", weights, v)  # [B, H, Lq, K]
    b, lq = tf.shape(y)[0], tf.shape(y)[2]
    # [B, H, Lq, K] -> [B, Lq, H, K] -> [B, Lq, D]
    y = tf.reshape(tf.transpose(y, [0, 2, 1, 3]), [b, lq, self.num_heads * self.head_dim])
    return self.out(y)

  def call(self, x, context, mask, training=False):
    k, v = self.project_kv(context)
    return self.attend(x, k, v, mask, training=training)


class FeedForward(keras.layers.Layer):

  def __init__(self, model_dim, ffn_dim, dropout_rate, **kwargs):
    super().__init__(**kwargs)
    self.inner = keras.layers.Dense(ffn_dim, activation="gelu", name="inner")
    self.outer = keras.layers.Dense(model_dim, name="outer")
    self.dropout = dropout_lib.Dropout(dropout_rate)
    self.built = True

  def call(self, x, training=False, token_mask=None):
    del token_mask  # position-wise: padding changes nothing (MoEFeedForward routes by it)
    return self.outer(self.dropout(self.inner(x), training=training))


class Block(keras.layers.Layer):
  """Self-attention, optional cross-attention, feed-forward; each pre-LN + residual."""

  def __init__(self, cfg: BackboneConfig, cross: bool, **kwargs):
    super().__init__(**kwargs)
    d = cfg.model_dim
    self.self_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="self_norm")
    self.self_attn = Attention(d, cfg.num_heads, cfg.attention_dropout_rate, name="self_attn")
    self.cross = cross
    if cross:
      self.cross_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="cross_norm")
      self.cross_attn = Attention(d, cfg.num_heads, cfg.attention_dropout_rate,
                                  name="cross_attn")
    self.ffn_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="ffn_norm")
    self.ffn = moe_lib.from_config(cfg, name="ffn") if cfg.ffn == "moe" else \
        FeedForward(d, cfg.ffn_dim, cfg.dropout_rate, name="ffn")
    self.dropout = dropout_lib.Dropout(cfg.dropout_rate)
    # Sublayers build on first call (a language model never calls cross-attention).
    self.built = True

  def call(self, x, self_mask, context=None, context_mask=None, training=False,
           token_mask=None):
    """token_mask: optional [B, L] (1 = real position): padding takes no expert capacity
    and does not count in an MoE FFN's balance loss or statistics."""
    h = self.self_norm(x)
    x = x + self.dropout(self.self_attn(h, h, self_mask, training=training), training=training)
    if self.cross and context is not None:
      h = self.cross_norm(x)
      x = x + self.dropout(self.cross_attn(h, context, context_mask, training=training),
                           training=training)
    h = self.ffn_norm(x)
    return x + self.dropout(self.ffn(h, training=training, token_mask=token_mask),
                            training=training)


  def step(self, x, cache, index, cross_kv=None, context_mask=None):
    """One decoding position. x: [B, 1, D]; cache: {'k', 'v'} of [B, H, T, K] holding
    the keys/values of positions < index; returns (y [B, 1, D], updated cache)."""
    h = self.self_norm(x)
    k_new, v_new = self.self_attn.project_kv(h)                        # [B, H, 1, K]
    t = cache["k"].shape[2]
    # Static-shape cache write at `index` (XLA-friendly; no dynamic slicing).
    at = tf.one_hot(index, t, dtype=x.dtype)[tf.newaxis, tf.newaxis, :, tf.newaxis]
    cache = {"k": cache["k"] * (1 - at) + k_new * at,
             "v": cache["v"] * (1 - at) + v_new * at}
    visible = tf.cast(tf.range(t) <= index, x.dtype)[tf.newaxis, tf.newaxis, tf.newaxis]
    x = x + self.self_attn.attend(h, cache["k"], cache["v"], visible)
    if self.cross and cross_kv is not None:
      h = self.cross_norm(x)
      x = x + self.cross_attn.attend(h, cross_kv[0], cross_kv[1], context_mask)
    return x + self.ffn(self.ffn_norm(x)), cache


class Backbone(keras.layers.Layer):
  """Encoder stack + decoder stack. Knows nothing of images, speech or text."""

  def __init__(self, cfg: BackboneConfig, **kwargs):
    super().__init__(**kwargs)
    self.cfg = cfg
    self.encoder_layers = [Block(cfg, cross=False, name=f"encoder_{i}")
                           for i in range(cfg.num_encoder_layers)]
    self.decoder_layers = [Block(cfg, cross=True, name=f"decoder_{i}")
                           for i in range(cfg.num_decoder_layers)]
    self.encoder_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="encoder_norm")
    self.decoder_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="decoder_norm")
    self.dropout = dropout_lib.Dropout(cfg.dropout_rate)
    self.built = True

  def feed_forwards(self):
    """Every block's feed-forward sublayer, encoder first (MoE statistics read them)."""
    return [block.ffn for block in self.encoder_layers + self.decoder_layers]

  def encode(self, x, mask, training=False, segment_ids=None):
    """x: [B, S, D], mask: [B, S] (1 = real) -> [B, S, D].

    segment_ids: optional [B, S] ints of packed rows (see batching.pack_examples): a
    position then attends only to the positions of its own segment."""
    attn_mask = mask[:, tf.newaxis, tf.newaxis, :]  # [B, 1, 1, S]
    if segment_ids is not None:
      attn_mask *= segment_mask(segment_ids, segment_ids, attn_mask.dtype)
    x = self.dropout(x, training=training)
    for layer in self.encoder_layers:
      x = layer(x, attn_mask, training=training, token_mask=mask)
    return self.encoder_norm(x)

  def decode(self, y, encoder_out=None, encoder_mask=None, training=False,
             segment_ids=None, encoder_segment_ids=None, target_mask=None):
    """y: [B, T, D] (already shifted right) -> [B, T, D]; causal self-attention.

    segment_ids [B, T] / encoder_segment_ids [B, S]: optional, for packed rows; the
    self-attention is then causal within each segment and the cross-attention sees only
    the encoder positions of the same segment. target_mask: optional [B, T] (1 = a real
    target position), for MoE routing (see Block)."""
    t = tf.shape(y)[1]
    causal = tf.linalg.band_part(tf.ones([t, t], y.dtype), -1, 0)[tf.newaxis, tf.newaxis]
    if segment_ids is not None:
      causal *= segment_mask(segment_ids, segment_ids, y.dtype)     # [B, 1, T, T]
    context_mask = None
    if encoder_out is not None:
      context_mask = encoder_mask[:, tf.newaxis, tf.newaxis, :]  # [B, 1, 1, S]
      if segment_ids is not None or encoder_segment_ids is not None:
        if segment_ids is None or encoder_segment_ids is None:
          raise ValueError("packed decoding needs both segment_ids and "
                           "encoder_segment_ids")
        context_mask *= segment_mask(segment_ids, encoder_segment_ids,
                                     context_mask.dtype)           # [B, 1, T, S]
    y = self.dropout(y, training=training)
    for layer in self.decoder_layers:
      y = layer(y, causal, encoder_out, context_mask, training=training,
                token_mask=target_mask)
    return self.decoder_norm(y)

  def init_cache(self, batch_size, max_length, dtype=None):
    """Zeroed self-attention caches, one per decoder layer: [B, H, T, K] each, in the
    compute dtype (bfloat16 under mixed precision) unless `dtype` is given."""
    dtype = dtype or self.compute_dtype
    h = self.cfg.num_heads
    k = self.cfg.model_dim // h
    return [{"k": tf.zeros([batch_size, h, max_length, k], dtype),
             "v": tf.zeros([batch_size, h, max_length, k], dtype)}
            for _ in self.decoder_layers]

  def cross_kv(self, encoder_out):
    """Encoder keys/values for every decoder layer, computed once per decode."""
    if encoder_out is None:
      return [None] * len(self.decoder_layers)
    return [layer.cross_attn.project_kv(encoder_out) for layer in self.decoder_layers]

  def decode_step(self, y, caches, index, cross_kvs, encoder_mask=None):
    """y: [B, 1, D] at position `index` -> ([B, 1, D], caches). Matches `decode`."""
    context_mask = None
    if encoder_mask is not None:
      context_mask = encoder_mask[:, tf.newaxis, tf.newaxis, :]
    new = []
    for layer, cache, kv in zip(self.decoder_layers, caches, cross_kvs):
      y, cache = layer.step(y, cache, index, kv, context_mask)
      new.append(cache)
    return self.decoder_norm(y), new

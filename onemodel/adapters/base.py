"""What a modality adapter provides, and the pieces adapters share.

A `Modality` turns a raw value into fixed-shape features inside tf.data (`features`),
builds the Keras layer that maps a batch of features into the backbone's [B, L, D]
space with a [B, L] mask (`input_layer`), and, for target modalities, maps decoded ids
back to a Python value (`postprocess`). Target modalities emit tokens through the shared
decoder, read by a `TokenEmbedding` whose softmax is tied to its embedding.

Model-wide settings (`adapters.ModalityConfigs`: image patch size, log-mel sizes, ...)
arrive as the `modality_cfg` argument, resolved from gin at the edges; an adapter reads
its own part of it and never reads gin (None: the settings' dataclass defaults).
"""

import math

import keras
import tensorflow as tf

from onemodel import registry
from onemodel import vocab as vocab_lib

MODALITIES = registry.Registry("modality")


class Modality:
  name = ""
  is_target = False  # can be a target (emits tokens through the decoder)

  def features(self, raw, spec, vocab, training, seed=None, modality_cfg=None):
    """Raw value -> dict of fixed-shape tensors; '' is the main key.

    Runs inside tf.data (graph mode) and eagerly; both are tested. With `training`,
    the result is `augment(features(raw, ..., training=False), spec, seed)`: the
    deterministic part can be cached (TrainConfig.cache) and only `augment` runs every
    epoch."""
    raise NotImplementedError

  def augment(self, feats, spec, seed, modality_cfg=None):
    """Training-time random augmentation of `features(..., training=False)`'s output
    (same keys and shapes). `seed` is a [2] int64 tensor, a different one per example:
    use stateless random ops (`tf.random.stateless_*`), so that the input pipeline can
    be checkpointed and a resumed run augments every example exactly as before.
    Default: none."""
    return feats

  def input_layer(self, spec, vocab_size, model_dim, embedding=None, name=None,
                  modality_cfg=None):
    """Keras layer: features dict -> (x [B, L, D], mask [B, L] float). `name` is unique
    per problem: it is the prefix of the layer's variables' checkpoint paths."""
    raise NotImplementedError(f"modality {self.name!r} cannot be an input")

  def target_ids(self, raw, spec, vocab):
    """Raw target -> 1-D int32 token ids ending in EOS (before padding)."""
    raise NotImplementedError(f"modality {self.name!r} cannot be a target")

  def vocab_size(self, spec, vocab):
    return vocab.vocab_size if vocab is not None else 0

  def postprocess(self, ids, spec, vocab):
    """Decoded ids (Python list) -> the value the metric compares with references."""
    raise NotImplementedError

  def display(self, value, spec) -> str:
    """A postprocessed output or a reference, as shown to a reader."""
    return str(value)

  def postprocess_tf(self, ids, spec, vocab):
    """In-graph postprocess for SavedModels: ids [N, T] (ending at EOS) -> [N] strings."""
    raise NotImplementedError

  def decode_raw(self, data, spec):
    """In-graph: an encoded file (tf.string scalar: WAV, PNG/JPEG bytes or text) -> the
    raw value `features` takes, with a clear error for input that is not of this kind."""
    raise NotImplementedError(f"modality {self.name!r} takes no raw input")

  def reference(self, raw, spec):
    """Raw target (numpy) -> the reference value for metrics."""
    raise NotImplementedError


def pad_or_truncate(x, length, axis=0):
  """Pads (with zeros) or truncates `x` along axis 0 to a static `length`."""
  x = x[:length]
  pad = length - tf.shape(x)[0]
  paddings = [[0, pad]] + [[0, 0]] * (len(x.shape) - 1)
  x = tf.pad(x, paddings)
  return tf.ensure_shape(x, [length] + x.shape[1:].as_list())


def with_eos(ids, length):
  """Truncates to length-1 tokens, appends EOS, pads to `length`."""
  ids = tf.concat([ids[:length - 1], [vocab_lib.EOS_ID]], axis=0)
  return pad_or_truncate(ids, length)


def until_eos(ids):
  """[N, T] ids -> ragged [N, None]: the tokens before the first EOS, padding dropped."""
  before_eos = tf.equal(tf.cumsum(tf.cast(tf.equal(ids, vocab_lib.EOS_ID), tf.int32),
                                  axis=1), 0)
  return tf.ragged.boolean_mask(ids, before_eos & tf.not_equal(ids, vocab_lib.PAD_ID))


def conv_gelu_stack(x, convs, norms, training):
  """Each convolution, then its batch norm (if `norms` is not empty), then GELU: the
  image stem and the speech subsampler (a norm's offset replaces its conv's bias)."""
  for i, conv in enumerate(convs):
    x = conv(x)
    if norms:
      x = norms[i](x, training=training)
    x = keras.activations.gelu(x)
  return x


def sinusoidal_positions(length, dim):
  """[length, dim] sine/cosine positions (Vaswani et al. 2017, section 3.5)."""
  pos = tf.cast(tf.range(length), tf.float32)[:, tf.newaxis]
  inv = tf.exp(-math.log(10000.0) * tf.range(0, dim, 2, dtype=tf.float32) / dim)
  angles = pos * inv[tf.newaxis, :]  # [L, D/2]
  return tf.concat([tf.sin(angles), tf.cos(angles)], axis=-1)


def position_embedding(length, dim, positions=None, dtype=tf.float32):
  """Sinusoidal positions to add to [B, L, D] activations: [1, L, D] for 0..L-1, or
  [B, L, D] for given positions [B, L] (packed rows restart at 0 per example)."""
  table = sinusoidal_positions(length, dim)
  pos = table[tf.newaxis] if positions is None else tf.gather(table, positions)
  return tf.cast(pos, dtype)


class TokenEmbedding(keras.layers.Layer):
  """Token embedding whose transpose is the output softmax (tied weights, as T2T's
  shared_embedding_and_softmax_weights). Shared by every feature using one vocabulary."""

  def __init__(self, vocab_size, model_dim, **kwargs):
    super().__init__(**kwargs)
    self.vocab_size = vocab_size
    self.model_dim = model_dim

  def build(self, input_shape=None):
    # Not autocast: under mixed precision `logits` reads the float32 table itself.
    self.embeddings = self.add_weight(
        name="embeddings", shape=(self.vocab_size, self.model_dim),
        initializer=keras.initializers.RandomNormal(stddev=self.model_dim ** -0.5),
        autocast=False)

  def call(self, ids):
    # [B, L] -> [B, L, D]; scaled by sqrt(D) so it matches the positions' scale.
    x = tf.gather(self.embeddings, ids) * math.sqrt(self.model_dim)
    return tf.cast(x, self.compute_dtype)

  def logits(self, h):
    """[B, T, D] x [V, D] -> [B, T, V] float32 logits (float32 matmul also under
    mixed precision: the loss and decoding read them)."""
    return tf.einsum("btd,vd->btv", tf.cast(h, tf.float32),
                     tf.convert_to_tensor(self.embeddings))


class TokenInput(keras.layers.Layer):
  """Input side of a token modality: shared embedding + sinusoidal positions (or, with
  positions=False, none: the encoder then sees the tokens as a set)."""

  def __init__(self, embedding: TokenEmbedding, positions: bool = True, **kwargs):
    super().__init__(**kwargs)
    self.embedding = embedding
    self.positions = positions

  def call(self, feats, training=False):
    """feats: {'': ids [B, L]} and, for packed rows, 'positions' [B, L] (each example's
    own 0, 1, ..; see batching.pack_examples) -> (x [B, L, D], mask [B, L])."""
    ids = feats[""]
    x = self.embedding(ids)
    if self.positions:
      x += position_embedding(tf.shape(ids)[1], self.embedding.model_dim,
                              feats.get("positions"), x.dtype)
    return x, tf.cast(ids != vocab_lib.PAD_ID, x.dtype)

  def output_length(self, feats):
    """Encoder positions this layer makes from `feats` (for FLOP counts)."""
    return tf.shape(feats[""])[1]

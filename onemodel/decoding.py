"""Greedy decoding with static shapes (recomputes the prefix each step; a cached
decoder is future work). Works under tf.function and XLA."""

import tensorflow as tf

from onemodel import vocab as vocab_lib


def greedy(model, problem: str, batch, max_length: int):
  """-> [B, max_length] int32 ids; positions after EOS are left as produced."""
  enc, enc_mask = model.encode(problem, batch, training=False)
  b = tf.shape(batch["targets"])[0]
  ids = tf.zeros([b, max_length], tf.int32)
  for i in tf.range(max_length):
    logits = model.decode(problem, ids, enc, enc_mask, training=False)   # [B, T, V]
    nxt = tf.argmax(logits[:, i], axis=-1, output_type=tf.int32)         # [B]
    ids += tf.one_hot(i, max_length, dtype=tf.int32)[tf.newaxis] * nxt[:, tf.newaxis]
    if tf.reduce_all(tf.reduce_any(ids == vocab_lib.EOS_ID, axis=1)):
      break  # every row has ended
  return ids


def strip_eos(ids):
  out = []
  for i in ids:
    if int(i) == vocab_lib.EOS_ID:
      break
    out.append(int(i))
  return out

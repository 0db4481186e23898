"""Batching of text examples: length buckets of a token budget, and sequence packing.

Both keep static shapes (a handful of bucket shapes, or one packed row shape), so that
XLA/TPU compile one program per shape, not per length."""

from typing import Dict

import tensorflow as tf


def token_keys(problem):
  return [role for role, spec in problem.features() if spec.modality in ("text",)]


def bucket_by_length(ds, problem, boundaries, batch_tokens: int):
  """Groups examples by token length into a handful of static shapes.

  Each bucket b pads to `boundaries[b]` tokens and holds `batch_tokens // boundaries[b]`
  examples (T2T's batch size in tokens), so short sentences are not padded to the
  longest one and XLA/TPU compile one program per bucket, not per length."""
  keys = token_keys(problem)
  top = max(spec.length for role, spec in problem.features() if role in keys)
  boundaries = sorted(b for b in boundaries if b < top) + [top]
  sizes = [max(batch_tokens // b, 1) for b in boundaries]

  def length(ex):
    return tf.reduce_max([tf.reduce_sum(tf.cast(ex[k] != 0, tf.int32)) for k in keys])

  def key_fn(ex):
    return tf.cast(tf.reduce_sum(tf.cast(length(ex) > tf.constant(boundaries), tf.int32)),
                   tf.int64)

  def reduce_fn(key, window):
    size = tf.gather(tf.constant(boundaries), key)
    def cut(batch):
      return {k: (v[:, :size] if k in keys else v) for k, v in batch.items()}
    return window.batch(tf.gather(tf.constant(sizes, tf.int64), key),
                        drop_remainder=True).map(cut)

  return ds.group_by_window(key_fn, reduce_fn,
                            window_size_func=lambda k: tf.gather(
                                tf.constant(sizes, tf.int64), k))


def _real_length(x):
  """Tokens before the trailing padding of a 1-D id sequence (PAD = 0)."""
  idx = tf.range(1, tf.shape(x)[0] + 1)
  return tf.reduce_max(tf.concat([[0], tf.where(x != 0, idx, 0)], axis=0))


def pack_examples(ds: tf.data.Dataset, lengths: Dict[str, int]) -> tf.data.Dataset:
  """Greedily packs consecutive examples into rows of fixed length (as seqio's packing).

  ds: unbatched examples whose features `lengths` names (e.g. {'inputs': 32,
    'targets': 32}) are 1-D int32 ids, padded with 0 after their real tokens. Other
    features are not allowed (they could not be packed).
  Returns unbatched rows with, for each key k: `k` [L_k] the concatenated tokens,
  `k_segment_ids` [L_k] (1, 2, 3, .. per example, 0 on padding) and `k_positions`
  [L_k] (0, 1, 2, .. restarting at every example, 0 on padding). Example j of a row has
  segment id j+1 in every key, so inputs and targets stay paired.

  Next-fit greedy, in order: an example goes into the current row if every one of its
  features fits, else the row is emitted and a new one starts with it. Examples without
  any token are dropped. Shapes are static ([L_k]); a finite dataset's last row is
  flushed at its end. Implemented with `Dataset.scan` (no Python generator)."""
  keys = sorted(lengths)
  spec = ds.element_spec
  if sorted(spec) != keys:
    raise ValueError(f"pack_examples: features {sorted(spec)} are not exactly the "
                     f"packed keys {keys}")
  for k in keys:
    if spec[k].shape.as_list() != [lengths[k]] or not spec[k].dtype.is_integer:
      raise ValueError(f"pack_examples: feature {k!r} must be 1-D integer ids of length "
                       f"{lengths[k]}, not {spec[k].dtype.name} {spec[k].shape}")

  def empty():
    state = {"count": tf.constant(0, tf.int32)}
    for k in keys:
      state[k] = tf.zeros([lengths[k]], spec[k].dtype)
      state[k + "_segment_ids"] = tf.zeros([lengths[k]], tf.int32)
      state[k + "_positions"] = tf.zeros([lengths[k]], tf.int32)
      state[k + "_fill"] = tf.constant(0, tf.int32)
    return state

  def row(state):
    return {k: v for k, v in state.items() if k != "count" and not k.endswith("_fill")}

  def append(state, ex, n):
    """`state` with example `ex` (real lengths n[k]) written after its tokens."""
    out = {"count": state["count"] + 1}
    seg = state["count"] + 1
    for k in keys:
      fill, real = state[k + "_fill"], tf.range(lengths[k]) < n[k]
      # Rolling by `fill` only wraps padding around: n[k] <= lengths[k] - fill.
      out[k] = state[k] + tf.roll(ex[k], fill, 0)
      out[k + "_segment_ids"] = state[k + "_segment_ids"] + tf.roll(
          tf.where(real, seg, 0), fill, 0)
      out[k + "_positions"] = state[k + "_positions"] + tf.roll(
          tf.where(real, tf.range(lengths[k]), 0), fill, 0)
      out[k + "_fill"] = fill + n[k]
    return out

  def select(cond, a, b):
    return {k: tf.where(cond, a[k], b[k]) for k in a}

  def step(state, elem):
    ex, end = elem
    n = {k: _real_length(ex[k]) for k in keys}
    fits = tf.reduce_all([state[k + "_fill"] + n[k] <= lengths[k] for k in keys])
    no_tokens = tf.reduce_all([n[k] == 0 for k in keys])
    nonempty = state["count"] > 0
    emit = tf.where(end, nonempty, ~fits & ~no_tokens)
    start = select(fits, state, empty())        # a full row starts over
    new = select(no_tokens | end, select(end, empty(), state), append(start, ex, n))
    return new, (emit, row(state))

  def not_end(ex):
    return ex, tf.constant(False)

  def emitted(emit, unused_row):
    return emit

  def drop_flag(unused_emit, packed):
    return packed

  end_marker = ({k: tf.zeros([lengths[k]], spec[k].dtype) for k in keys}, tf.constant(True))
  ds = ds.map(not_end).concatenate(tf.data.Dataset.from_tensors(end_marker))
  return ds.scan(empty(), step).filter(emitted).map(drop_flag)


def pack_lengths(problem) -> Dict[str, int]:
  """The keys and row lengths `pack_examples` uses for `problem` (text tokens only), or a
  ValueError naming why the problem cannot be packed."""
  feats = problem.features()
  bad = [f"{role} ({spec.modality})" for role, spec in feats if spec.modality != "text"]
  if bad:
    raise ValueError(f"problem {problem.name}: packing needs text-token features only, "
                     f"not {', '.join(bad)}")
  return {role: spec.length for role, spec in feats}

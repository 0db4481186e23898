"""Class labels, emitted as target tokens through the shared decoder (as MultiModel).

Class k is token id NUM_RESERVED + k, followed by EOS; prediction is the first decoded
token. The label vocabulary is the problem's class list, so its size comes from data."""

import tensorflow as tf

from onemodel import vocab as vocab_lib
from onemodel.adapters import base


class Label(base.Modality):
  name = "label"
  is_target = True

  def features(self, raw, spec, vocab, training, seed=None, modality_cfg=None):
    raise NotImplementedError("labels are targets only")

  def target_ids(self, raw, spec, vocab):
    return tf.reshape(tf.cast(raw, tf.int32) + vocab_lib.NUM_RESERVED, [1])

  def vocab_size(self, spec, vocab):
    return vocab_lib.NUM_RESERVED + len(spec.class_names)

  def postprocess(self, ids, spec, vocab):
    k = int(ids[0]) - vocab_lib.NUM_RESERVED if len(ids) else -1
    return k if 0 <= k < len(spec.class_names) else -1

  def display(self, value, spec):
    return spec.class_names[value] if 0 <= value < len(spec.class_names) else "(none)"

  def postprocess_tf(self, ids, spec, vocab):
    names = tf.constant(list(spec.class_names) + [""])
    k = ids[:, 0] - vocab_lib.NUM_RESERVED
    k = tf.where((k >= 0) & (k < len(spec.class_names)), k, len(spec.class_names))
    return tf.gather(names, k)

  def reference(self, raw, spec):
    return int(raw)


base.MODALITIES.register("label", Label())

"""Text: subword (or character) ids from the problem's vocabulary, tokenized in tf.data.

Input and target text of a problem share one vocabulary and therefore one
`TokenEmbedding`, whose transpose is also the output softmax. Text input with a non-text
target (text -> class label) has an embedding of its own, sized by its vocabulary."""

import tensorflow as tf

from onemodel.adapters import base


class Text(base.Modality):
  name = "text"
  is_target = True

  def features(self, raw, spec, vocab, training, seed=None, modality_cfg=None):
    ids = vocab.encode_tf(raw)
    return {"": base.with_eos(ids, spec.length)}

  def target_ids(self, raw, spec, vocab):
    return vocab.encode_tf(raw)

  def input_layer(self, spec, vocab_size, model_dim, embedding=None, name=None,
                  modality_cfg=None):
    name = name or "text_input"
    if embedding is None:  # the target is not text (e.g. a class label): own embedding
      if not vocab_size:
        raise ValueError("a text input needs a vocabulary (its FeatureSpec.vocab)")
      embedding = base.TokenEmbedding(vocab_size, model_dim, name=f"{name}_embedding")
    return base.TokenInput(embedding, name=name)

  def postprocess(self, ids, spec, vocab):
    return vocab.decode(ids)

  def postprocess_tf(self, ids, spec, vocab):
    return vocab.decode_tf(base.until_eos(ids))

  def decode_raw(self, data, spec):
    tf.debugging.assert_positive(tf.strings.length(tf.strings.strip(data)),
                                 message="onemodel: empty input text")
    return data

  def reference(self, raw, spec):
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


base.MODALITIES.register("text", Text())

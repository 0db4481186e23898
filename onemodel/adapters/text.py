"""Text: subword (or character) ids from the problem's vocabulary, tokenized in tf.data.

Input and target text of a problem share one vocabulary and therefore one
`TokenEmbedding`, whose transpose is also the output softmax. Text input with a non-text
target (text -> class label) has an embedding of its own, sized by its vocabulary."""

import dataclasses

import tensorflow as tf

from onemodel import vocab as vocab_lib
from onemodel.adapters import base
from onemodel.errors import UserError, check_field_types


@dataclasses.dataclass(frozen=True)
class TextConfig:
  """The model-wide text-input settings, a plain value: `TextConfig()` is the defaults
  below, whatever gin binds; `adapters.ModalityConfigs.from_gin()` (at the edges only)
  reads the bindings."""
  # Word dropout at training time: each input token (not EOS or padding) becomes UNK
  # with this probability. A regularizer for small text datasets trained from scratch
  # (Iyyer et al. 2015, "Deep Unordered Composition", ACL; Sennrich et al. 2016,
  # arXiv:1606.02891, dropped whole words for English-Romanian NMT). Targets are never
  # touched.
  token_dropout: float = 0.0

  def __post_init__(self):
    check_field_types(self, "TextConfig")
    if not 0.0 <= self.token_dropout < 1.0:
      raise UserError(f"gin binding TextConfig.token_dropout={self.token_dropout!r}: "
                      "allowed range is [0, 1)")


def own_config(modality_cfg) -> TextConfig:
  """The text part of an `adapters.ModalityConfigs` (None: the defaults)."""
  return modality_cfg.text if modality_cfg is not None else TextConfig()


class Text(base.Modality):
  name = "text"
  is_target = True

  def features(self, raw, spec, vocab, training, seed=None, modality_cfg=None):
    ids = vocab.encode_tf(raw)
    return {"": base.with_eos(ids, spec.length)}

  def target_ids(self, raw, spec, vocab):
    return vocab.encode_tf(raw)

  def augment(self, feats, spec, seed, modality_cfg=None):
    """Word dropout (`TextConfig.token_dropout`), a pure function of `seed` so that a
    resumed input pipeline repeats it exactly."""
    rate = own_config(modality_cfg).token_dropout
    if not rate:
      return feats
    ids = feats[""]  # [length] int32, EOS then PAD after the text
    drop = (tf.random.stateless_uniform(tf.shape(ids), seed) < rate) & (
        ids >= vocab_lib.NUM_RESERVED)
    return {**feats, "": tf.where(drop, tf.constant(vocab_lib.UNK_ID, ids.dtype), ids)}

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

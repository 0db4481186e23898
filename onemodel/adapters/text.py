"""Text: subword (or character) ids from the problem's vocabulary, tokenized in tf.data.

Input and target text of a problem share one vocabulary and therefore one
`TokenEmbedding`, whose transpose is also the output softmax. Text input with a non-text
target (text -> class label) has an embedding of its own, sized by its vocabulary."""

import dataclasses

import keras
import tensorflow as tf

from onemodel import dropout as dropout_lib
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
  # N-gram convolutions over the embedded input tokens, one ReLU map of model_dim per
  # width, projected back and added before the backbone (Kim 2014, arXiv:1408.5882:
  # widths 3, 4, 5 over word vectors; MultiModel's modality nets were convolutional).
  # () = none.
  ngram_widths: tuple = ()
  # Sinusoidal positions added to the input tokens. False: none, so the encoder sees the
  # input as a set of tokens -- with ngram_widths, of n-gram features that carry their
  # local order, as Kim's max-over-time pooling sees them. Chosen for sst2, whose
  # training phrases average 9.4 words and its dev and test sentences 19-20
  # (gin/experiments/sst2.gin has the measurements).
  input_positions: bool = True
  # With ngram_widths: dropout on the n-gram maps at training time (Kim 2014 drops 0.5 of
  # its pooled n-gram features).
  ngram_dropout: float = 0.0
  # With ngram_widths: the max over time of each n-gram map (Kim 2014's read-out), one
  # extra encoder position in front of the tokens, so that the decoder can read a summary
  # whose scale does not depend on the sentence's length.
  ngram_pool: bool = False

  def __post_init__(self):
    check_field_types(self, "TextConfig")
    if not 0.0 <= self.token_dropout < 1.0:
      raise UserError(f"gin binding TextConfig.token_dropout={self.token_dropout!r}: "
                      "allowed range is [0, 1)")
    if not 0.0 <= self.ngram_dropout < 1.0:
      raise UserError(f"gin binding TextConfig.ngram_dropout={self.ngram_dropout!r}: "
                      "allowed range is [0, 1)")
    widths = self.ngram_widths
    if not isinstance(widths, (tuple, list)) or not all(
        isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 9 for w in widths) \
        or len(set(widths)) != len(widths):
      raise UserError(f"gin binding TextConfig.ngram_widths={widths!r}: must be a tuple "
                      "of distinct widths in [1, 9]")
    object.__setattr__(self, "ngram_widths", tuple(widths))  # frozen: hashable
    for field in ("ngram_pool", "ngram_dropout"):
      if getattr(self, field) and not widths:
        raise UserError(f"gin binding TextConfig.{field}={getattr(self, field)!r}: acts on "
                        "n-gram maps; set TextConfig.ngram_widths too")


def check_packing(cfg: TextConfig, pack: bool, scope: str = "") -> None:
  """N-gram convolutions and packed rows exclude each other (UserError if both).
  `scope`: the problem whose own bindings (`sst2/TextConfig...`) set `cfg`, if any."""
  if pack and cfg.ngram_widths:
    where = f"{scope}/TextConfig" if scope else "TextConfig"
    raise UserError(f"gin binding {where}.ngram_widths={cfg.ngram_widths!r}: not with "
                    "TrainConfig.pack=True (a convolution would read across the examples "
                    "of a packed row)")


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
    cfg = own_config(modality_cfg)
    if cfg.ngram_widths:
      return NgramTokenInput(embedding, cfg.ngram_widths, positions=cfg.input_positions,
                             dropout=cfg.ngram_dropout, pool=cfg.ngram_pool, name=name)
    return base.TokenInput(embedding, positions=cfg.input_positions, name=name)

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


class NgramTokenInput(base.TokenInput):
  """Token input followed by n-gram convolutions (`TextConfig.ngram_widths`): the
  embedded tokens plus ReLU(conv_w) for each width w, projected to model_dim."""

  def __init__(self, embedding, widths, positions=True, dropout=0.0, pool=False,
               **kwargs):
    super().__init__(embedding, positions=positions, **kwargs)
    d = embedding.model_dim
    self.widths = tuple(widths)
    self.convs = [keras.layers.Conv1D(d, w, padding="same", activation="relu",
                                      name=f"ngram{w}") for w in widths]
    self.proj = keras.layers.Dense(d, name="ngram_proj")
    self.dropout = dropout_lib.Dropout(dropout) if dropout else None
    self.pool = keras.layers.Dense(d, name="ngram_pool") if pool else None

  def call(self, feats, training=False):
    x, mask = super().call(feats, training=training)  # [B, L, D], [B, L]
    if "positions" in feats:  # only packed rows have them (the trainer refuses those)
      check_packing(TextConfig(ngram_widths=self.widths), pack=True)
    grams = tf.concat([conv(x * mask[..., None]) for conv in self.convs], -1)  # [B, L, WD]
    if self.dropout is not None:
      grams = self.dropout(grams, training=training)
    x = x + self.proj(grams)                                                   # [B, L, D]
    if self.pool is None:
      return x, mask
    # ReLU maps are >= 0: zeroing padded positions leaves the max over real ones.
    pooled = tf.reduce_max(grams * mask[..., None], axis=1, keepdims=True)     # [B, 1, WD]
    x = tf.concat([self.pool(pooled), x], axis=1)                              # [B, 1+L, D]
    return x, tf.concat([tf.ones_like(mask[:, :1]), mask], axis=1)             # [B, 1+L]

  def output_length(self, feats):
    return super().output_length(feats) + (1 if self.pool is not None else 0)

"""One model: the shared backbone plus the adapters its problems' feature specs call for.

Routing is by each problem's specs: the input modality's adapter maps raw features to
[B, S, D]; the backbone encodes them; the decoder starts from a learned task token (the
target space, as MultiModel's "To-English" token) and emits target tokens through the
target adapter's tied softmax. Every problem trains with one loss: next-token
cross-entropy with padding masked.
"""

from typing import Dict, Mapping, Optional, Sequence

import keras
import tensorflow as tf

from onemodel import adapters
from onemodel import backbone as backbone_lib
from onemodel import vocab as vocab_lib
from onemodel.adapters import base


def default_vocab_key(problem) -> str:
  """Features that share a key share one `TokenEmbedding` (one vocabulary)."""
  return f"{problem.name}_{problem.targets.modality}"


class OneModel(keras.Model):

  def __init__(self, problems: Sequence, vocabs: Mapping[str, Optional[vocab_lib.Vocab]],
               cfg: Optional[backbone_lib.BackboneConfig] = None,
               vocab_keys: Optional[Mapping[str, str]] = None,
               modality_cfg: Optional[adapters.ModalityConfigs] = None, **kwargs):
    super().__init__(**kwargs)
    self.cfg = cfg or backbone_lib.BackboneConfig()
    # The adapters' settings (None: their defaults; gin is read at the edges). Carried
    # here so that evaluation and export featurize inputs as these layers expect.
    self.modality_cfg = modality_cfg or adapters.ModalityConfigs()
    d = self.cfg.model_dim
    self.problems = {p.name: p for p in problems}
    self.backbone = backbone_lib.Backbone(self.cfg, name="backbone")
    self.task_index = {p.name: i for i, p in enumerate(problems)}
    self.task_embedding = self.add_weight(
        name="task_embedding", shape=(len(problems), d),
        initializer=keras.initializers.RandomNormal(stddev=1.0), autocast=False)
    vocab_keys = dict(vocab_keys or {})
    self.embeddings: Dict[str, base.TokenEmbedding] = {}
    self.input_adapters: Dict[str, keras.layers.Layer] = {}
    self._target_key = {}
    for p in problems:
      key = vocab_keys.get(p.name) or default_vocab_key(p)
      tmod = adapters.get_modality(p.targets.modality)
      if not tmod.is_target:
        raise ValueError(f"problem {p.name}: modality {tmod.name!r} cannot be a target")
      size = tmod.vocab_size(p.targets, vocabs.get(p.name))
      if key not in self.embeddings:
        self.embeddings[key] = base.TokenEmbedding(size, d, name=f"embedding_{key}")
      self._target_key[p.name] = key
      if p.inputs is not None:
        imod = adapters.get_modality(p.inputs.modality)
        shared = self.embeddings[key] if p.inputs.modality == p.targets.modality else None
        # Not sharing the target's embedding (text -> label), a token input is sized by
        # its own vocabulary and gets its own embedding.
        in_size = size if shared is not None else imod.vocab_size(p.inputs,
                                                                   vocabs.get(p.name))
        # Named by problem: two image problems get two adapters with distinct
        # variable paths (the checkpoint keys weights by path).
        self.input_adapters[p.name] = imod.input_layer(
            p.inputs, in_size, d, embedding=shared, name=f"{p.name}_{imod.name}_input",
            modality_cfg=self.modality_cfg.for_problem(p.name))
    # Sublayers create their variables on first call; there is nothing to build here.
    self.built = True

  def target_embedding(self, problem: str) -> base.TokenEmbedding:
    return self.embeddings[self._target_key[problem]]

  def encode(self, problem: str, batch, training=False):
    """-> (encoder_out [B, S, D], mask [B, S]) or (None, None) for language models."""
    if problem not in self.input_adapters:
      return None, None
    feats = {k[len("inputs"):].lstrip("_"): v for k, v in batch.items()
             if k.startswith("inputs")}
    x, mask = self.input_adapters[problem](feats, training=training)
    return self.backbone.encode(x, mask, training=training,
                                segment_ids=feats.get("segment_ids")), mask

  def encoded_length(self, problem: str, batch):
    """Encoder positions for this batch (0 for language models), for FLOP counts."""
    if problem not in self.input_adapters:
      return tf.constant(0)
    feats = {k[len("inputs"):].lstrip("_"): v for k, v in batch.items()
             if k.startswith("inputs")}
    return self.input_adapters[problem].output_length(feats)

  def decode(self, problem: str, targets, encoder_out, encoder_mask, training=False,
             segment_ids=None, positions=None, encoder_segment_ids=None):
    """Teacher-forced logits: targets [B, T] ids -> [B, T, V].

    Packed rows (batching.pack_examples) pass targets' `segment_ids` and `positions` [B, T]
    and the inputs' `encoder_segment_ids` [B, S]: every example then starts from the
    task token, at its own position 0, and attends only to itself."""
    emb = self.target_embedding(problem)
    b = tf.shape(targets)[0]
    task = tf.gather(self.task_embedding, self.task_index[problem])          # [D]
    task = tf.tile(task[tf.newaxis, tf.newaxis, :], [b, 1, 1])               # [B, 1, D]
    prev = emb(targets[:, :-1])
    task = tf.cast(task, prev.dtype)
    # Shift right: position t sees the task token and targets[:, :t].
    y = tf.concat([task, prev], axis=1)                                      # [B, T, D]
    if positions is not None:
      # ... and in a packed row, each example's first position sees the task token.
      y = tf.where(tf.equal(positions, 0)[:, :, tf.newaxis], task, y)
    y += base.position_embedding(tf.shape(targets)[1], self.cfg.model_dim, positions,
                                 y.dtype)
    # Position t predicts targets[:, t]: it is padding where that target is.
    target_mask = tf.cast(targets != vocab_lib.PAD_ID, y.dtype)              # [B, T]
    h = self.backbone.decode(y, encoder_out, encoder_mask, training=training,
                             segment_ids=segment_ids,
                             encoder_segment_ids=encoder_segment_ids,
                             target_mask=target_mask)
    return emb.logits(h)

  def decode_step(self, problem: str, prev_ids, index, caches, cross_kvs, encoder_mask):
    """Incremental decoding: the token at position index-1 (ignored at 0, where the task
    token stands) -> (logits [B, V] for position `index`, caches). Equals `decode`."""
    emb = self.target_embedding(problem)
    b = tf.shape(prev_ids)[0]
    task = tf.gather(self.task_embedding, self.task_index[problem])
    task = tf.tile(task[tf.newaxis, tf.newaxis, :], [b, 1, 1])               # [B, 1, D]
    prev = emb(prev_ids[:, tf.newaxis])                                      # [B, 1, D]
    y = tf.where(tf.equal(index, 0), tf.cast(task, prev.dtype), prev)
    max_len = caches[0]["k"].shape[2]
    pos = base.sinusoidal_positions(max_len, self.cfg.model_dim)
    y += tf.cast(tf.gather(pos, index), y.dtype)[tf.newaxis, tf.newaxis, :]
    h, caches = self.backbone.decode_step(y, caches, index, cross_kvs, encoder_mask)
    return emb.logits(h)[:, 0], caches

  def call(self, batch, problem: str, training=False):
    enc, mask = self.encode(problem, batch, training=training)
    return self.decode(problem, batch["targets"], enc, mask, training=training,
                       segment_ids=batch.get("targets_segment_ids"),
                       positions=batch.get("targets_positions"),
                       encoder_segment_ids=batch.get("inputs_segment_ids"))


def token_loss(logits, targets, label_smoothing=0.0):
  """Sum of next-token cross-entropy over real (non-pad) tokens, and their count."""
  mask = tf.cast(targets != vocab_lib.PAD_ID, tf.float32)
  if label_smoothing:
    onehot = tf.one_hot(targets, tf.shape(logits)[-1])
    xent = tf.nn.softmax_cross_entropy_with_logits(
        keras.ops.convert_to_tensor(
            onehot * (1 - label_smoothing) +
            label_smoothing / tf.cast(tf.shape(logits)[-1], tf.float32)), logits)
  else:
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
  return tf.reduce_sum(xent * mask), tf.reduce_sum(mask)


def build(problems, vocabs, vocab_keys=None,
          cfg: Optional[backbone_lib.BackboneConfig] = None,
          modality_cfg: Optional[adapters.ModalityConfigs] = None) -> OneModel:
  """The model for `problems`; its variables are created on the first call.
  `modality_cfg`: the adapters' settings (None: their defaults, not gin's bindings)."""
  # A fixed name: variable paths (checkpoint keys of weights and pruning masks) must not
  # depend on how many models this process built before.
  return OneModel(problems, vocabs, cfg or backbone_lib.BackboneConfig(), vocab_keys,
                  modality_cfg=modality_cfg, name="one_model")

"""Evaluation: teacher-forced loss for every problem, greedy decoding + real scorers for
problems whose metrics need predictions. One code path for training-time and CLI eval.

Under a synchronous strategy with more than one replica (Mirrored, multi-worker, TPU) each
batch is split over the replicas: each computes the loss and decodes its slice, and the
loss sums and the decoded ids (each replica's rows placed at its own offset, zeros
elsewhere) are summed over the replicas, so every worker scores the whole split and gets
the one-device figures (greedy and beam decoding; sampling draws by row position). Every
worker reads the whole (small) evaluation split and takes part (the sums are
collectives); only the chief writes. Under parameter-server training the coordinator
evaluates on its own device.
"""

import dataclasses
import time
from typing import Dict, Optional

import tensorflow as tf

from onemodel import adapters
from onemodel import data as data_lib
from onemodel import decoding
from onemodel import metrics as metrics_lib
from onemodel import model as model_lib
from onemodel import vocab as vocab_lib


NUM_EXAMPLES = 3  # the first examples of a split, kept to show beside the metrics


@dataclasses.dataclass(frozen=True)
class Example:
  """One evaluated example as a reader sees it: the source text (None for images and
  audio), the model's output and the reference."""
  source: Optional[str]
  output: str
  reference: str


class Evaluator:
  """Compiles the eval functions once per (model, problem) and reuses them."""

  def __init__(self, model, problem, vocab, data_dir: str, batch_size: int = 64,
               decode_cfg: Optional[decoding.DecodeConfig] = None,
               strategy: Optional[tf.distribute.Strategy] = None):
    """After `evaluate`, `examples` holds the split's first few decoded examples and
    `rows_per_replica` how many of its rows each replica evaluated.

    `decode_cfg`: how to decode (None: `DecodeConfig()`'s defaults; the edges pass
    `decoding.from_gin()`). Evaluation scores the best beam only. `strategy`: the one the
    model's variables were made under (None: the model's own device)."""
    self.model, self.problem, self.vocab = model, problem, vocab
    self.data_dir, self.batch_size = data_dir, batch_size
    name = problem.name

    @tf.function
    def loss_fn(batch):
      logits = model(batch, problem=name, training=False)
      return model_lib.token_loss(logits, batch["targets"])

    cfg = dataclasses.replace(decode_cfg or decoding.DecodeConfig(), return_beams=False)
    max_len = cfg.max_decode_length or problem.targets.length

    decode = decoding.decode_function(model, name, max_len, cfg)

    def decode_fn(batch):
      return decode(batch)[0]

    self._loss_fn, self._decode_fn = loss_fn, decode_fn
    self.strategy = strategy if distributed(strategy) else None
    if self.strategy is not None:
      self._loss_fn, self._decode_fn = _on_replicas(self.strategy, loss_fn, decode_fn)
    self.examples, self.rows_per_replica = [], []

  def evaluate(self, role: str = "test", max_examples: int = 0) -> Dict[str, float]:
    p = self.problem
    ds = data_lib.dataset(p, role, self.data_dir, self.batch_size, training=False,
                          vocab=self.vocab, keep_raw=True,
                          modality_cfg=self.model.modality_cfg)
    if max_examples:
      ds = ds.unbatch().take(max_examples).batch(self.batch_size)
    decode = metrics_lib.needs_decoding(p.metrics)
    tmod = adapters.get_modality(p.targets.modality)
    loss_sum, tokens, rows, preds, refs, sources = 0.0, 0.0, 0, [], [], []
    self.rows_per_replica = [0] * (self.strategy.num_replicas_in_sync if self.strategy else 1)
    start = time.time()
    for batch in ds:
      raw = batch.pop("targets_raw").numpy()
      if "inputs_raw" in batch and len(sources) < NUM_EXAMPLES:
        sources.extend(x.decode("utf-8") for x in batch["inputs_raw"].numpy())
      batch.pop("inputs_raw", None)
      rows += len(raw)
      if self.strategy is not None:
        batch = self._split(batch, len(raw))
      s, c = self._loss_fn(batch)
      loss_sum += float(s)
      tokens += float(c)
      if decode:
        ids = self._decode_fn(batch).numpy()[:len(raw)]
        preds.extend(tmod.postprocess(decoding.strip_eos(row), p.targets, self.vocab)
                     for row in ids)
        refs.extend(tmod.reference(r, p.targets) for r in raw)
    if self.strategy is None:
      self.rows_per_replica = [rows]
    results = metrics_lib.loss_metrics(loss_sum, tokens)
    for name in p.metrics:
      if name not in metrics_lib.DECODE_FREE:
        results[name] = float(metrics_lib.METRICS.get(name)(preds, refs))
    results["num_examples"] = len(refs) if decode else rows  # LM: windows
    results["seconds"] = time.time() - start
    self.examples = [
        Example(sources[i] if i < len(sources) else None,
                tmod.display(preds[i], p.targets), tmod.display(refs[i], p.targets))
        for i in range(min(NUM_EXAMPLES, len(preds)))]
    return results

  def _split(self, batch, rows: int):
    """A host batch -> per-replica slices of equal size. A batch whose rows do not
    divide over the replicas (the last one; every one if `batch_size` does not divide)
    is padded with copies of its last row whose targets are all padding: they add no
    loss, and their decoded ids are cut off."""
    replicas = self.strategy.num_replicas_in_sync
    pad = -rows % replicas
    if pad:
      batch = {k: tf.concat([v, tf.repeat(v[-1:], pad, axis=0)], axis=0)
               for k, v in batch.items()}
      real = tf.range(rows + pad) < rows                                   # [B + pad]
      real = tf.reshape(real, [-1] + [1] * (batch["targets"].shape.rank - 1))
      batch["targets"] = tf.where(real, batch["targets"], vocab_lib.PAD_ID)
    per = (rows + pad) // replicas
    for r in range(replicas):
      self.rows_per_replica[r] += min(per, max(rows - r * per, 0))

    def slice_for(ctx):
      start = ctx.replica_id_in_sync_group * per
      return {k: v[start:start + per] for k, v in batch.items()}
    return self.strategy.experimental_distribute_values_from_function(slice_for)


def distributed(strategy) -> bool:
  """Whether evaluation runs on the replicas of `strategy`: not with one replica, nor
  under parameter-server training (its replicas are reached through its coordinator).
  When it does, every worker must evaluate: its sums over the replicas are
  collectives."""
  return strategy is not None and strategy.num_replicas_in_sync > 1 and \
      not isinstance(strategy, tf.distribute.ParameterServerStrategy)


def _on_replicas(strategy, loss_fn, decode_fn):
  """One-replica eval functions -> functions of per-replica batches: loss sums and
  decoded ids summed over the replicas. The ids travel as a sum of zero-padded blocks
  rather than an all-gather, whose order across workers is the collective's device order,
  not necessarily the replica ids'; float32 holds ids below 2^24 exactly."""
  total = tf.distribute.ReduceOp.SUM
  replicas = strategy.num_replicas_in_sync

  @tf.function
  def loss(batch):
    s, c = strategy.run(loss_fn, (batch,))
    return strategy.reduce(total, s, axis=None), strategy.reduce(total, c, axis=None)

  def placed(batch):
    ids = decode_fn(batch)                                                 # [b, T]
    b = tf.shape(ids)[0]
    before = tf.distribute.get_replica_context().replica_id_in_sync_group * b
    after = (replicas - 1) * b - before
    return tf.pad(tf.cast(ids, tf.float32), [[before, after], [0, 0]])    # [R*b, T]

  @tf.function
  def decode(batch):
    return tf.cast(strategy.reduce(total, strategy.run(placed, (batch,)), axis=None),
                   tf.int32)
  return loss, decode

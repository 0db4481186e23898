"""Evaluation: teacher-forced loss for every problem, greedy decoding + real scorers for
problems whose metrics need predictions. One code path for training-time and CLI eval."""

import dataclasses
import time
from typing import Dict, Optional

import tensorflow as tf

from onemodel import adapters
from onemodel import data as data_lib
from onemodel import decoding
from onemodel import metrics as metrics_lib
from onemodel import model as model_lib


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
               decode_cfg: Optional[decoding.DecodeConfig] = None):
    """After `evaluate`, `examples` holds the split's first few decoded examples.

    `decode_cfg`: how to decode (None: `DecodeConfig()`'s defaults; the edges pass
    `decoding.from_gin()`). Evaluation scores the best beam only."""
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
    self.examples = []

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
    start = time.time()
    for batch in ds:
      raw = batch.pop("targets_raw").numpy()
      if "inputs_raw" in batch and len(sources) < NUM_EXAMPLES:
        sources.extend(x.decode("utf-8") for x in batch["inputs_raw"].numpy())
      batch.pop("inputs_raw", None)
      rows += len(raw)
      s, c = self._loss_fn(batch)
      loss_sum += float(s)
      tokens += float(c)
      if decode:
        ids = self._decode_fn(batch).numpy()
        preds.extend(tmod.postprocess(decoding.strip_eos(row), p.targets, self.vocab)
                     for row in ids)
        refs.extend(tmod.reference(r, p.targets) for r in raw)
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

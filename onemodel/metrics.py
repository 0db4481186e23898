"""Real scorers: sacrebleu for BLEU, jiwer for WER; accuracy; per-token loss.

Each metric takes the decoded predictions and references (Python values) and returns
a float. `loss_per_token` is computed by the evaluator from teacher-forced losses."""

import math
from typing import Callable, Dict, List

from onemodel import registry


METRICS: "registry.Registry[Callable]" = registry.Registry("metric")


def _register(name):
  def deco(fn):
    METRICS.register(name, fn)
    return fn
  return deco


@_register("accuracy")
def accuracy(preds: List, refs: List) -> float:
  return 100.0 * sum(p == r for p, r in zip(preds, refs)) / max(len(refs), 1)


@_register("wer")
def wer(preds: List[str], refs: List[str]) -> float:
  import jiwer
  # jiwer rejects empty hypotheses-lists entries only for references; an empty
  # prediction is a deletion, which jiwer counts correctly.
  return 100.0 * jiwer.wer(list(refs), list(preds))


@_register("bleu")
def bleu(preds: List[str], refs: List[str]) -> float:
  import sacrebleu
  return sacrebleu.corpus_bleu(list(preds), [list(refs)]).score


DECODE_FREE = ("loss_per_token",)


def needs_decoding(names) -> bool:
  return any(n not in DECODE_FREE for n in names)


def loss_metrics(loss_sum: float, tokens: float) -> Dict[str, float]:
  per_token = loss_sum / max(tokens, 1.0)
  return {"loss_per_token": per_token, "perplexity": math.exp(min(per_token, 50.0))}

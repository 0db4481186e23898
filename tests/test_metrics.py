import math

import pytest

from onemodel import metrics


def test_wer_is_jiwer():
  assert metrics.wer(["seven", "two"], ["seven", "three"]) == pytest.approx(50.0)
  assert metrics.wer(["", "two"], ["one", "two"]) == pytest.approx(50.0)


def test_bleu_is_sacrebleu():
  ref = ["Ein Mann fährt Fahrrad auf der Straße."]
  assert metrics.bleu(ref, ref) == pytest.approx(100.0)
  assert metrics.bleu(["Eine Frau liest."], ref) < 10


def test_accuracy_and_loss():
  assert metrics.accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 75.0
  m = metrics.loss_metrics(2.0 * math.log(2), 2.0)
  assert m["perplexity"] == pytest.approx(2.0)


def test_needs_decoding():
  assert metrics.needs_decoding(("bleu",))
  assert not metrics.needs_decoding(("loss_per_token",))

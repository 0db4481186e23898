import math

import pytest

from onemodel import metrics


def test_wer_is_jiwer_with_predictions_first():
  assert metrics.wer(["seven", "two"], ["seven", "three"]) == pytest.approx(50.0)
  assert metrics.wer(["", "two"], ["one", "two"]) == pytest.approx(50.0)
  # Asymmetric: one inserted word over a 2-word reference is 50%; swapped arguments
  # would count one deleted word over 3 reference words (33%).
  assert metrics.wer(["one two three"], ["one two"]) == pytest.approx(50.0)
  assert metrics.wer(["one two"], ["one two three"]) == pytest.approx(100 / 3)


def test_bleu_is_sacrebleu_with_predictions_first():
  import sacrebleu
  ref = ["Ein Mann fährt Fahrrad auf der Straße."]
  assert metrics.bleu(ref, ref) == pytest.approx(100.0)
  assert metrics.bleu(["Eine Frau liest."], ref) < 10
  # A short hypothesis pays the brevity penalty (71.7); with the arguments swapped the
  # precisions pay instead (68.0).
  hyp = ["Ein Mann fährt Fahrrad auf der"]
  expected = sacrebleu.corpus_bleu(hyp, [ref]).score
  assert metrics.bleu(hyp, ref) == pytest.approx(expected, rel=1e-9)
  assert abs(expected - sacrebleu.corpus_bleu(ref, [hyp]).score) > 3


def test_accuracy_and_loss():
  assert metrics.accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 75.0
  m = metrics.loss_metrics(2.0 * math.log(2), 2.0)
  assert m["perplexity"] == pytest.approx(2.0)


def test_needs_decoding():
  assert metrics.needs_decoding(("bleu",))
  assert not metrics.needs_decoding(("loss_per_token",))

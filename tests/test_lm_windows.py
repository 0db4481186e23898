"""Language modelling on a corpus of short texts (lm1b's shape: one sentence per example),
here the real SST-2 sentences as a targets-only problem: evaluation scores every token
of every text exactly once, whether the text is shorter or longer than a window, and
training windows are contiguous pieces of one text."""

import numpy as np
import pytest
import tensorflow as tf

from onemodel import data as data_lib
from onemodel import problem as problem_lib
from onemodel import sources
from onemodel import testing

WINDOW = 64  # characters: SST-2 sentences are both shorter and longer than this


@pytest.fixture(scope="module")
def lm(tmp_path_factory, manual_dir):
  p = sources.problem(
      "sst2_sentences_lm",
      sources.Delimited({"train": "dev.tsv", "validation": "dev.tsv"},
                        columns={"targets": ("sentence", "content")}),
      targets=problem_lib.FeatureSpec("text", length=WINDOW,
                                      vocab=problem_lib.VocabSpec("char")),
      raw_subdir="sst2")
  data_dir = str(tmp_path_factory.mktemp("lm_data"))
  data_lib.prepare(p, data_dir, manual_dir)
  return p, data_dir, data_lib.get_vocab(p, data_dir)


def _texts_ids(p, data_dir, vocab):
  texts = [ex["targets"] for ex in data_lib.raw_split(p, "eval", data_dir)
           .as_numpy_iterator()]
  return [vocab.encode_tf(tf.constant(t)).numpy() for t in texts]


def test_every_token_of_short_and_long_texts_is_evaluated_once(lm):
  p, data_dir, vocab = lm
  assert p.lm and p.metrics == ("loss_per_token",)
  ids = _texts_ids(p, data_dir, vocab)
  lengths = np.array([len(x) for x in ids])
  assert (lengths < WINDOW).sum() > 100 and (lengths > WINDOW).sum() > 100
  windows = np.concatenate([b["targets"].numpy() for b in data_lib.dataset(
      p, "eval", data_dir, 32, training=False, vocab=vocab)])
  assert windows.shape == (int(np.sum(-(-lengths // WINDOW))), WINDOW)
  # In order, the windows' real tokens are the texts' tokens: none dropped, none twice.
  np.testing.assert_array_equal(windows[windows != 0], np.concatenate(ids))


def _is_piece(window, text):
  if len(window) > len(text):
    return False
  pieces = np.lib.stride_tricks.sliding_window_view(text, len(window))
  return bool((pieces == window).all(axis=1).any())


def test_training_windows_are_pieces_of_one_text(lm):
  p, data_dir, vocab = lm
  ids = _texts_ids(p, data_dir, vocab)
  batch = next(iter(data_lib.dataset(p, "train", data_dir, 64, training=True, vocab=vocab,
                                     seed=3)))["targets"].numpy()
  whole = 0
  for row in batch:
    real = row[row != 0]
    assert 0 < len(real) <= WINDOW and (row[len(real):] == 0).all()  # padding at the end
    if len(real) < WINDOW:  # a text shorter than the window is taken whole
      assert any(len(t) == len(real) and (t == real).all() for t in ids)
      whole += 1
    else:  # a window of a longer text
      assert any(_is_piece(real, t) for t in ids)
  assert 0 < whole < len(batch)


def test_sentence_lm_trains_and_evaluates(lm, manual_dir):
  p, data_dir, _ = lm
  seconds = testing.check_problem(p, manual_dir, data_dir, jit_compile=False,
                                  export=False, roles=("train", "eval"))
  assert "evaluation" in seconds

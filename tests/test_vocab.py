import os

import pytest
import tensorflow as tf

from onemodel import vocab as vocab_lib
from onemodel.problem import VocabSpec
from onemodel.errors import UserError

SENTENCES = ["A man in a blue shirt is standing on a ladder.",
             "Two dogs play in the snow.", "A girl reads a book."] * 30


def test_sentencepiece_roundtrip_eager_and_in_tf_data():
  v = vocab_lib.SentencePieceVocab.train(SENTENCES, 200)
  assert 10 < v.vocab_size <= 200
  eager = v.encode_tf(tf.constant(SENTENCES[0])).numpy().tolist()
  assert vocab_lib.PAD_ID not in eager and vocab_lib.EOS_ID not in eager
  ds = tf.data.Dataset.from_tensor_slices([SENTENCES[0]]).map(v.encode_tf)
  assert next(iter(ds)).numpy().tolist() == eager
  assert v.decode(eager + [vocab_lib.EOS_ID, 5, 6]) == SENTENCES[0]


def test_char_vocab_is_exact_and_lossless():
  v = vocab_lib.CharVocab.train(["hello world\n", "HELLO"])
  ids = v.encode_tf(tf.constant("hello\nworld")).numpy().tolist()
  assert len(ids) == len("hello\nworld")
  assert v.decode(ids) == "hello\nworld"
  assert v.encode_tf(tf.constant("z")).numpy().tolist() == [vocab_lib.UNK_ID]


def test_vocab_saved_once_and_reloaded(tmp_path):
  spec = VocabSpec("sentencepiece", 100)
  calls = []

  def texts():
    calls.append(1)
    return SENTENCES

  v1 = vocab_lib.get_or_build_vocab(str(tmp_path), "p", spec, texts)
  v2 = vocab_lib.get_or_build_vocab(str(tmp_path), "p", spec, texts)
  assert len(calls) == 1
  assert os.path.exists(vocab_lib.vocab_path(str(tmp_path), "p", spec))
  s = tf.constant(SENTENCES[1])
  assert v1.encode_tf(s).numpy().tolist() == v2.encode_tf(s).numpy().tolist()


def test_vocab_learns_from_at_most_max_texts(tmp_path):
  """A corpus too large to learn from whole (lm1b): only the first max_texts texts."""
  read = []

  def texts():
    for t in ["abc", "abd", "xyz"]:
      read.append(t)
      yield t

  v = vocab_lib.get_or_build_vocab(str(tmp_path), "p", VocabSpec("char", max_texts=2), texts)
  assert read == ["abc", "abd"]  # the third text is never read
  assert v.encode_tf(tf.constant("x")).numpy().tolist() == [vocab_lib.UNK_ID]
  assert vocab_lib.UNK_ID not in v.encode_tf(tf.constant("dab")).numpy().tolist()


def _write_t2t_vocab(path):
  subwords = ["<pad>", "<EOS>", "the_", "dog_", "cat_", "a_", "s_", "_"]
  path.write_text("".join(f"'{s}'\n" for s in subwords))
  return subwords


def test_t2t_subwords_file_keeps_t2t_ids(tmp_path):
  path = tmp_path / "vocab.subwords"
  subwords = _write_t2t_vocab(path)
  v = vocab_lib.T2TSubwordVocab(str(path))
  ids = v.encode_tf(tf.constant("the dog cat")).numpy().tolist()
  # T2T's ids are line numbers in the file: 'the_' is line 2, 'dog_' line 3.
  assert ids[:2] == [subwords.index("the_"), subwords.index("dog_")]
  assert v.decode(ids + [vocab_lib.EOS_ID]) == "the dog cat"
  ds = tf.data.Dataset.from_tensor_slices(["the cat"]).map(v.encode_tf)
  assert v.decode(next(iter(ds)).numpy()) == "the cat"


def test_t2t_vocab_via_gin(tmp_path):
  """The gin knob, read at an edge, reaches the vocabulary as a value."""
  import gin
  path = tmp_path / "vocab.subwords"
  _write_t2t_vocab(path)
  spec = type("S", (), {"kind": "sentencepiece", "size": 100})()
  with gin.unlock_config():
    gin.bind_parameter("text_vocab.t2t_subwords_file", str(path))
  try:
    t2t_file = vocab_lib.text_vocab()
  finally:
    gin.clear_config()
  assert t2t_file == str(path)
  v = vocab_lib.get_or_build_vocab(str(tmp_path), "p", spec, lambda: [], t2t_file)
  assert isinstance(v, vocab_lib.T2TSubwordVocab)


def test_t2t_vocab_bad_file(tmp_path):
  bad = tmp_path / "bad.subwords"
  bad.write_text("'hello_'\n'world_'\n")
  with pytest.raises(UserError, match="bad.subwords"):
    vocab_lib.T2TSubwordVocab(str(bad))
  with pytest.raises(UserError, match="does not exist"):
    vocab_lib.T2TSubwordVocab(str(tmp_path / "missing.subwords"))

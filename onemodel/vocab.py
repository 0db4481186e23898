"""Vocabularies: learned from a problem's training text, tokenized inside tf.data.

Every vocabulary reserves id 0 for padding and id 1 for end-of-sequence (the T2T
convention, so T2T `.subwords` files load with the same ids) and 2 for unknown.

* `SentencePieceVocab`: subwords learned with the `sentencepiece` trainer (tf-text cannot
  train SentencePiece models), tokenized in-graph by tf-text's `FastSentencepieceTokenizer`
  (the model is a constant, not a resource, so it survives
  `distribute_datasets_from_function`; the resource-based `SentencepieceTokenizer` fails
  there with "Resource ... SentencepieceOp does not exist").
  Detokenization is lossless, so BLEU is scored on real detokenized text.
* `CharVocab`: one id per character through a `tf.lookup` table; per-token loss is then
  exactly per-character loss (tiny-shakespeare's published unit).
* `T2TSubwordVocab`: an existing Tensor2Tensor `.subwords` file, via
  `tfds.deprecated.text.SubwordTextEncoder` (its surviving implementation).
"""

import io
import itertools
import json
import os
import time
from typing import Iterable, List, Sequence

import gin
import tensorflow as tf

from onemodel import fileio
from onemodel.errors import UserError

PAD_ID = 0
EOS_ID = 1
UNK_ID = 2
NUM_RESERVED = 3


class Vocab:
  """Interface: `vocab_size`, `encode_tf` (in-graph), `decode` (Python)."""
  vocab_size: int
  exportable = True  # encode_tf/decode_tf are pure graph ops (no py_function)

  def encode_tf(self, text: tf.Tensor) -> tf.Tensor:
    """A scalar tf.string -> 1-D int32 ids, without EOS."""
    raise NotImplementedError

  def decode_ids(self, ids: Sequence[int]) -> str:
    raise NotImplementedError

  def decode_tf(self, ids: tf.RaggedTensor) -> tf.Tensor:
    """In-graph detokenization (for SavedModels): ragged [N, None] ids -> [N] strings."""
    raise NotImplementedError(f"{type(self).__name__} cannot detokenize in a graph")

  def decode(self, ids: Sequence[int]) -> str:
    """Ids -> text; stops at the first EOS and drops padding."""
    out = []
    for i in ids:
      i = int(i)
      if i == EOS_ID:
        break
      if i != PAD_ID:
        out.append(i)
    return self.decode_ids(out)


class SentencePieceVocab(Vocab):

  def __init__(self, model_proto: bytes):
    import tensorflow_text as tf_text  # registers the SentencePiece ops.
    self.model_proto = model_proto
    self._tokenizer = tf_text.FastSentencepieceTokenizer(model_proto)
    self.vocab_size = int(self._tokenizer.vocab_size())

  def encode_tf(self, text):
    return self._tokenizer.tokenize(text)

  def decode_ids(self, ids):
    return self._tokenizer.detokenize(tf.constant(ids, tf.int32)).numpy().decode("utf-8")

  def decode_tf(self, ids):
    return self._tokenizer.detokenize(ids)

  @classmethod
  def train(cls, texts: Iterable[str], size: int) -> "SentencePieceVocab":
    import sentencepiece as spm
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=size,
        model_type="unigram", character_coverage=1.0, pad_id=PAD_ID, eos_id=EOS_ID,
        unk_id=UNK_ID, bos_id=-1, hard_vocab_limit=False, minloglevel=2,
        # Keep every training sentence: our corpora are small.
        input_sentence_size=0, shuffle_input_sentence=False)
    return cls(model.getvalue())

  def save_bytes(self) -> bytes:
    return self.model_proto


class CharVocab(Vocab):

  def __init__(self, chars: Sequence[str]):
    self.chars = list(chars)
    self.vocab_size = NUM_RESERVED + len(self.chars)
    keys = tf.constant([ord(c) for c in self.chars], tf.int32)
    values = tf.range(NUM_RESERVED, self.vocab_size, dtype=tf.int32)
    self._table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, values), default_value=UNK_ID)

  def encode_tf(self, text):
    return self._table.lookup(tf.strings.unicode_decode(text, "UTF-8"))

  def decode_ids(self, ids):
    return "".join(self.chars[i - NUM_RESERVED] if i >= NUM_RESERVED else "\ufffd"
                   for i in ids)

  def decode_tf(self, ids):
    table = tf.constant(["\ufffd"] * NUM_RESERVED + self.chars)
    return tf.strings.reduce_join(tf.gather(table, ids), axis=-1)

  @classmethod
  def train(cls, texts: Iterable[str]) -> "CharVocab":
    chars = set()
    for t in texts:
      chars.update(t)
    return cls(sorted(chars))

  def save_bytes(self) -> bytes:
    return json.dumps(self.chars).encode("utf-8")


class T2TSubwordVocab(Vocab):
  """A Tensor2Tensor `.subwords` vocabulary (ids 0 <pad>, 1 <EOS> as in T2T).

  Same subword inventory and ids as T2T; one difference of the surviving tfds encoder:
  a sentence's last word is matched without T2T's trailing '_' escape. Tokenizes through
  tf.py_function, so it trains and evaluates but cannot be exported in a SavedModel."""
  exportable = False

  def __init__(self, path: str):
    import tensorflow_datasets as tfds
    if not tf.io.gfile.exists(path):
      raise UserError(f"T2T vocabulary file {path} does not exist")
    prefix = path[:-len(".subwords")] if path.endswith(".subwords") else path
    if not tf.io.gfile.exists(prefix + ".subwords"):
      raise UserError(f"T2T vocabulary {path}: expected a file ending in .subwords")
    lines = [l for l in fileio.read_text(prefix + ".subwords").splitlines() if l.strip()]
    if lines[:2] != ["'<pad>'", "'<EOS>'"]:
      raise UserError(f"T2T vocabulary {path}: expected '<pad>' and '<EOS>' as its first "
                      f"two lines, found {lines[:2]}")
    try:
      # T2T's format (one single-quoted subword a line, no header); tfds' own
      # load_from_file wants a tfds header, so the list is passed directly.
      self._encoder = tfds.deprecated.text.SubwordTextEncoder(
          vocab_list=[l.strip()[1:-1] for l in lines])
    except Exception as e:
      raise UserError(f"T2T vocabulary {path} could not be read: {e}") from e
    # SubwordTextEncoder numbers the file's lines from 1 (0 is its padding), so T2T's
    # own ids (line index: '<pad>' 0, '<EOS>' 1, subwords from 2) are its ids minus 1.
    self.vocab_size = self._encoder.vocab_size - 1

  def encode_tf(self, text):
    def _enc(t):
      return tf.constant([i - 1 for i in self._encoder.encode(t.numpy().decode("utf-8"))],
                         tf.int32)
    ids = tf.py_function(_enc, [text], tf.int32)
    ids.set_shape([None])
    return ids

  def decode_ids(self, ids):
    return self._encoder.decode([i + 1 for i in ids if i > EOS_ID])

  def save_bytes(self) -> bytes:  # what identifies it (warm_start.fingerprint)
    return "\n".join(self._encoder.subwords).encode("utf-8")


@gin.configurable
def text_vocab(t2t_subwords_file: str = ""):
  """gin knob: `text_vocab.t2t_subwords_file = '/path/vocab.subwords'` makes every text
  feature use an existing T2T vocabulary instead of learning one. Read at the edges (the
  trainer, onemodel-prepare, the test kit), which pass it on as `t2t_file`."""
  return t2t_subwords_file


def vocab_path(data_dir: str, problem_name: str, spec) -> str:
  suffix = f"spm{spec.size}.model" if spec.kind == "sentencepiece" else "chars.json"
  return os.path.join(data_dir, "vocab", problem_name, suffix)


def load_vocab(path: str, kind: str) -> Vocab:
  data = fileio.read_bytes(path)
  if kind == "sentencepiece":
    return SentencePieceVocab(data)
  return CharVocab(json.loads(data.decode("utf-8")))


def get_or_build_vocab(data_dir: str, problem_name: str, spec, texts_fn,
                       t2t_file: str = "", wait_s: float = 0.0) -> Vocab:
  """Loads a problem's vocabulary, learning it from `texts_fn()` on first use.

  Saved under DATA_DIR/vocab/PROBLEM/, next to the prepared TFDS data; written to a
  temporary file and renamed, so a crash never leaves half a vocabulary behind.
  With `wait_s` (a cluster's non-chief workers) it never learns one: it waits up to that
  long for the chief's, so that every worker trains with the same vocabulary.
  """
  if t2t_file:
    return T2TSubwordVocab(t2t_file)
  path = vocab_path(data_dir, problem_name, spec)
  if wait_s:
    deadline = time.time() + wait_s
    while not tf.io.gfile.exists(path):
      if time.time() > deadline:
        raise UserError(f"vocabulary {path} was not written by the chief within "
                        f"{wait_s:.0f} s; run onemodel-prepare first")
      time.sleep(1)
  if tf.io.gfile.exists(path):
    return load_vocab(path, spec.kind)
  texts = list(itertools.islice(texts_fn(), spec.max_texts or None))
  if spec.kind == "sentencepiece":
    vocab = SentencePieceVocab.train(texts, spec.size)
  elif spec.kind == "char":
    vocab = CharVocab.train(texts)
  else:
    raise ValueError(f"unknown vocabulary kind {spec.kind!r}")
  fileio.atomic_write_bytes(path, vocab.save_bytes())
  return vocab


def encode_py(vocab: Vocab, texts: List[str]) -> List[List[int]]:
  return [vocab.encode_tf(tf.constant(t)).numpy().tolist() for t in texts]

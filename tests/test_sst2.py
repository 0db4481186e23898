"""sst2 on the real SST-2 TSVs: text -> class label, the shape of a user's first
text-classification problem (a generic `sources.Delimited`, no builder code)."""

import csv
import os

import tensorflow as tf

from onemodel import data as data_lib
from onemodel import model as model_lib
from onemodel import testing


def _rows(manual_dir, name):
  with open(os.path.join(manual_dir, "sst2", name), encoding="utf-8", newline="") as f:
    return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]


def test_sst2_prepared_from_the_real_tsv(data_dir, problems, manual_dir):
  p = problems["sst2"]
  assert p.inputs.modality == "text" and p.targets.modality == "label"
  assert p.splits == {"train": "train", "eval": "validation", "test": "test"}
  for role, fname in (("train", "train.tsv"), ("eval", "dev.tsv"), ("test", "test.tsv")):
    rows = _rows(manual_dir, fname)
    got = list(data_lib.raw_split(p, role, data_dir).take(3).as_numpy_iterator())
    n = int(data_lib.raw_split(p, role, data_dir).reduce(0, lambda c, _: c + 1))
    assert n == len(rows)  # no row lost: train has CRLF endings, dev/test another header
    by_text = {text.strip(): int(label) for label, text in rows}
    for ex in got:
      assert by_text[ex["inputs"].decode("utf-8")] == ex["targets"]


def test_text_input_gets_its_own_vocabulary(data_dir, problems):
  p = problems["sst2"]
  vocab = data_lib.get_vocab(p, data_dir)
  batch = next(iter(data_lib.dataset(p, "train", data_dir, 4, training=True, vocab=vocab)))
  assert int(tf.reduce_max(batch["inputs"])) > 10  # subword ids, not label ids
  model = model_lib.build([p], {"sst2": vocab})
  logits = model(batch, problem="sst2")
  assert logits.shape == (4, 2, 3 + 2)  # reserved ids + negative/positive
  emb = model.input_adapters["sst2"].embedding
  assert emb.vocab_size == vocab.vocab_size
  assert emb is not model.target_embedding("sst2")


def test_sst2_evaluates_and_exports(data_dir, manual_dir):
  # The test kit's evaluation (accuracy) and export round-trip: the SavedModel takes
  # raw sentences and answers with class names, as the model does in process.
  seconds = testing.check_problem("sst2", manual_dir, data_dir, jit_compile=False)
  assert {"evaluation", "export"} <= set(seconds)

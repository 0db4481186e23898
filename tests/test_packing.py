"""Sequence packing: the packer keeps every example intact, and a packed row gives each
example exactly the logits it gets alone (attention never crosses examples)."""

import numpy as np
import pytest
import tensorflow as tf

from onemodel import backbone as backbone_lib
from onemodel import batching, data
from onemodel import model as model_lib
from onemodel import problem as problem_lib
from onemodel import vocab as vocab_lib

CFG = backbone_lib.BackboneConfig(model_dim=16, num_heads=2, ffn_dim=32,
                                  num_encoder_layers=2, num_decoder_layers=2,
                                  dropout_rate=0.0)
VOCAB = 20
KEYS = ("inputs", "targets")


def _problem(lm=False, inputs_len=12, targets_len=10, inputs_modality="text"):
  text = problem_lib.VocabSpec("char")
  return problem_lib.Problem(
      name="lm" if lm else "t2t", builder=None, raw_subdir="", metrics=("accuracy",),
      to_raw=lambda ex: {"inputs": ex["src"], "targets": ex["tgt"]},
      inputs=None if lm else problem_lib.FeatureSpec(inputs_modality, length=inputs_len,
                                                     vocab=text),
      targets=problem_lib.FeatureSpec("text", length=targets_len, vocab=text),
      splits={"train": "train"})


def _examples(rng, n, lengths, eos=True):
  """n examples: {key: [L] ids}, random real lengths, ending with EOS, PAD after."""
  out = []
  for _ in range(n):
    ex = {}
    for k, length in lengths.items():
      m = int(rng.integers(1, length + 1))
      ids = np.zeros([length], np.int32)
      ids[:m] = rng.integers(3, VOCAB, size=m)
      if eos:
        ids[m - 1] = vocab_lib.EOS_ID
      ex[k] = ids
    out.append(ex)
  return out


def _pack(examples, lengths):
  ds = tf.data.Dataset.from_tensor_slices(
      {k: np.stack([e[k] for e in examples]) for k in lengths})
  return list(batching.pack_examples(ds, lengths).as_numpy_iterator())


def _real(ids):
  nz = np.nonzero(ids)[0]
  return ids[:nz[-1] + 1] if len(nz) else ids[:0]


# -- the packer --------------------------------------------------------------------------

def test_packer_keeps_every_example_and_marks_segments():
  rng = np.random.default_rng(0)
  lengths = {"inputs": 12, "targets": 8}
  examples = _examples(rng, 60, lengths)
  rows = _pack(examples, lengths)
  assert len(rows) < len(examples)  # it did pack
  unpacked = []
  for r, row in enumerate(rows):
    count = row["inputs_segment_ids"].max()
    for k, length in lengths.items():
      ids, seg, pos = row[k], row[k + "_segment_ids"], row[k + "_positions"]
      assert ids.shape == seg.shape == pos.shape == (length,)
      # Segments are 1..count, contiguous, in order, then padding (segment 0, id 0).
      real = seg > 0
      n = real.sum()
      assert real[:n].all() and not real[n:].any()
      assert (ids[n:] == 0).all() and (pos[n:] == 0).all()
      assert np.all(np.diff(seg[:n]) >= 0) and np.all(np.diff(seg[:n]) <= 1)
      assert seg[:n].max() == count and seg[0] == 1
      for s in range(1, count + 1):
        at = np.nonzero(seg == s)[0]
        np.testing.assert_array_equal(pos[at], np.arange(len(at)))
    for s in range(1, count + 1):
      unpacked.append({k: row[k][row[k + "_segment_ids"] == s] for k in lengths})
    # Next-fit greedy: the example that opened the next row did not fit into this one.
    if r + 1 < len(rows):
      nxt = {k: rows[r + 1][k][rows[r + 1][k + "_segment_ids"] == 1] for k in lengths}
      assert any((row[k + "_segment_ids"] > 0).sum() + len(nxt[k]) > lengths[k]
                 for k in lengths)
  assert len(unpacked) == len(examples)
  for got, want in zip(unpacked, examples):
    for k in lengths:
      np.testing.assert_array_equal(got[k], _real(want[k]))


def test_packer_targets_only_and_full_rows():
  lengths = {"targets": 6}
  exs = [{"targets": np.array(t + [0] * (6 - len(t)), np.int32)}
         for t in ([5, 6, 1], [7, 8, 9, 10, 11, 1], [3, 1], [4, 1], [9, 9, 1])]
  rows = _pack(exs, lengths)
  np.testing.assert_array_equal([r["targets"] for r in rows],
                                [[5, 6, 1, 0, 0, 0], [7, 8, 9, 10, 11, 1],
                                 [3, 1, 4, 1, 0, 0], [9, 9, 1, 0, 0, 0]])
  np.testing.assert_array_equal(rows[2]["targets_segment_ids"], [1, 1, 2, 2, 0, 0])
  np.testing.assert_array_equal(rows[2]["targets_positions"], [0, 1, 0, 1, 0, 0])


def test_pack_rejects_bad_features():
  ds = tf.data.Dataset.from_tensor_slices({"targets": np.ones([2, 5], np.int32)})
  with pytest.raises(ValueError, match="length 6"):
    batching.pack_examples(ds, {"targets": 6})
  with pytest.raises(ValueError, match="packed keys"):
    batching.pack_examples(ds, {"inputs": 5, "targets": 5})


# -- the model on packed rows ------------------------------------------------------------

def _model(problem):
  tf.keras.utils.set_random_seed(1)
  vocab = type("V", (), {"vocab_size": VOCAB})()
  return model_lib.OneModel([problem], {problem.name: vocab}, CFG)


def _check_packed_equals_alone(problem, lengths, eos=True):
  rng = np.random.default_rng(1)
  examples = _examples(rng, 7, lengths, eos=eos)
  rows = _pack(examples, lengths)
  assert len(rows) < len(examples)
  model = _model(problem)
  packed = {k: tf.constant(np.stack([r[k] for r in rows])) for k in rows[0]}
  packed_logits = model(packed, problem=problem.name).numpy()
  alone = {k: tf.constant(np.stack([e[k] for e in examples])) for k in lengths}
  alone_logits = model(alone, problem=problem.name).numpy()
  where = []  # (row, positions in the row) of example i
  for r, row in enumerate(rows):
    seg = row["targets_segment_ids"]
    where += [(r, np.nonzero(seg == s)[0]) for s in range(1, seg.max() + 1)]
  assert len(where) == len(examples)
  for i, (r, at) in enumerate(where):
    np.testing.assert_allclose(packed_logits[r, at], alone_logits[i, :len(at)],
                               atol=1e-4, rtol=1e-4)
  # The check has teeth: without segment ids/positions a later example's logits differ.
  plain = model({k: packed[k] for k in lengths}, problem=problem.name).numpy()
  i, (r, at) = next((i, w) for i, w in enumerate(where) if w[1][0] > 0)
  assert not np.allclose(plain[r, at], alone_logits[i, :len(at)], atol=1e-3)


def test_packed_text_to_text_equals_each_example_alone():
  _check_packed_equals_alone(_problem(), {"inputs": 12, "targets": 10})


def test_packed_language_model_equals_each_example_alone():
  _check_packed_equals_alone(_problem(lm=True, targets_len=12), {"targets": 12}, eos=False)


def test_packed_loss_counts_only_real_tokens():
  lengths = {"inputs": 12, "targets": 10}
  rows = _pack(_examples(np.random.default_rng(2), 6, lengths), lengths)
  targets = np.stack([r["targets"] for r in rows])
  logits = tf.zeros(targets.shape + (VOCAB,))
  loss_sum, tokens = model_lib.token_loss(logits, tf.constant(targets))
  assert tokens.numpy() == (targets != 0).sum()
  np.testing.assert_allclose(loss_sum.numpy(), tokens.numpy() * np.log(VOCAB), rtol=1e-5)


def test_packed_training_step_compiles_with_xla():
  problem = _problem()
  lengths = {"inputs": 12, "targets": 10}
  rows = _pack(_examples(np.random.default_rng(3), 8, lengths), lengths)[:2]
  batch = {k: tf.constant(np.stack([r[k] for r in rows])) for k in rows[0]}
  model = _model(problem)
  model(batch, problem=problem.name)

  def step(b):
    with tf.GradientTape() as tape:
      s, c = model_lib.token_loss(model(b, problem=problem.name, training=True),
                                  b["targets"])
      loss = s / c
    grads = tape.gradient(loss, model.trainable_variables)
    return loss, tf.linalg.global_norm(grads)

  eager = step(batch)
  xla = tf.function(step, jit_compile=True)(batch)
  np.testing.assert_allclose([x.numpy() for x in xla], [x.numpy() for x in eager],
                             rtol=1e-4)


# -- data.dataset(pack=True) -------------------------------------------------------------

def _fake_raw_split(texts):
  def raw_split(problem, role, data_dir, shuffle_files=False, shuffle_seed=None, share=None):
    return tf.data.Dataset.from_tensor_slices({"src": texts, "tgt": [t[::-1] for t in texts]})
  return raw_split


def test_dataset_pack_gives_static_packed_batches(monkeypatch):
  texts = ["ab", "abc cab", "c", "bca", "a b c", "cc", "abcabc", "b"]
  monkeypatch.setattr(data, "raw_split", _fake_raw_split(texts))
  vocab = vocab_lib.CharVocab(sorted(set("".join(texts))))
  problem = _problem(inputs_len=12, targets_len=10)
  ds = data.dataset(problem, "train", "", batch_size=3, training=True, vocab=vocab,
                    seed=0, pack=True)
  spec = ds.element_spec
  assert sorted(spec) == sorted(f"{k}{s}" for k in KEYS
                                for s in ("", "_segment_ids", "_positions"))
  assert spec["inputs"].shape == (3, 12) and spec["targets_positions"].shape == (3, 10)
  batch = next(iter(ds))
  assert batch["inputs_segment_ids"].numpy().max() > 1  # several examples per row
  np.testing.assert_array_equal(batch["targets_segment_ids"].numpy().max(1),
                                batch["inputs_segment_ids"].numpy().max(1))


def test_dataset_pack_language_model(monkeypatch):
  texts = ["ab", "abc", "c"]
  monkeypatch.setattr(data, "raw_split", _fake_raw_split(texts))
  problem = problem_lib.Problem(
      name="lm", builder=None, raw_subdir="", metrics=(), inputs=None,
      to_raw=lambda ex: {"targets": ex["tgt"]},
      targets=problem_lib.FeatureSpec("text", length=8, vocab=problem_lib.VocabSpec("char")),
      splits={"train": "train"})
  vocab = vocab_lib.CharVocab(list("abc"))
  ds = data.dataset(problem, "train", "", batch_size=2, training=True, vocab=vocab,
                    seed=0, pack=True)
  assert sorted(ds.element_spec) == ["targets", "targets_positions", "targets_segment_ids"]
  assert next(iter(ds))["targets_segment_ids"].numpy().max() > 1


def test_dataset_pack_refuses_what_it_cannot_pack():
  t2t = _problem()
  with pytest.raises(ValueError, match="training only"):
    data.dataset(t2t, "eval", "", 4, training=False, pack=True)
  with pytest.raises(ValueError, match="exclusive"):
    data.dataset(t2t, "train", "", 4, training=True, batch_tokens=256, pack=True)
  with pytest.raises(ValueError, match="text-token features only"):
    data.dataset(_problem(inputs_modality="image"), "train", "", 4, training=True,
                 pack=True)


@pytest.mark.parametrize("binding", ["TextConfig.ngram_widths=(3,)",
                                     "multi30k_en_de/TextConfig.ngram_widths=(3,)"])
def test_packing_with_ngram_convolutions_is_one_line(tmp_path, data_dir, manual_dir,
                                                      binding):
  """A convolution over a packed row would read across its examples: refused before
  training, one line naming both bindings (also the problem's own, scoped binding)."""
  from conftest import cli, one_line_error, train_args
  rc, _, se = cli("onemodel-train", *train_args(tmp_path / "run", data_dir, manual_dir, [
      "TrainConfig.problem='multi30k_en_de'", "TrainConfig.train_steps=2",
      "TrainConfig.batch_size=8", "TrainConfig.pack=True", binding]))
  line = one_line_error(rc, se, binding, "TrainConfig.pack=True")
  assert "in user code" not in line  # not from inside the traced step
  assert not (tmp_path / "run").exists()  # refused before the run directory is written

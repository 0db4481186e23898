"""Preprocessing ops tested eagerly and inside tf.data (they can differ)."""

import numpy as np
import pytest
import tensorflow as tf

from onemodel import adapters
from onemodel import data as data_lib
from onemodel import problem as problem_lib
from onemodel import vocab as vocab_lib
from onemodel.adapters import speech
from onemodel.errors import UserError


def test_every_modality_registered():
  assert {"image", "speech", "text", "label"} <= set(adapters.MODALITIES.names())


def test_speech_features_eager_equals_tf_data():
  spec = problem_lib.FeatureSpec("speech", length=4000, sample_rate=8000)
  mod = adapters.get_modality("speech")
  wav = (np.sin(np.arange(3000) * 0.05) * 8000).astype(np.int16)
  eager = mod.features(tf.constant(wav), spec, None, training=False)
  ds = tf.data.Dataset.from_tensors(wav).map(
      lambda w: mod.features(w, spec, None, training=False))
  graph = next(iter(ds))
  np.testing.assert_allclose(eager[""], graph[""], atol=1e-4)
  frames = speech.num_frames(4000, 8000, speech.SpeechConfig())
  assert eager[""].shape == (frames, speech.SpeechConfig().num_mels)
  assert int(eager["length"]) == speech.num_frames(3000, 8000, speech.SpeechConfig())
  # Padded frames are exactly zero; real frames are normalized.
  assert np.all(eager[""].numpy()[int(eager["length"]):] == 0)


def test_speech_subsampler_mask_matches_length():
  layer = speech.Subsampler(16, speech.SpeechConfig(num_mels=8, conv_channels=4))
  feats = {"": tf.random.normal([2, 40, 8]), "length": tf.constant([40, 10])}
  x, mask = layer(feats)
  assert x.shape == (2, 10, 16)
  np.testing.assert_array_equal(mask.numpy().sum(1), [10, 3])


def test_speech_subsampler_batch_norm_trains_its_statistics_only_in_training():
  layer = speech.Subsampler(16, speech.SpeechConfig(num_mels=8, conv_channels=4,
                                                    conv_batch_norm=True))
  feats = {"": tf.random.normal([2, 40, 8]) + 3.0, "length": tf.constant([40, 10])}
  x, _ = layer(feats, training=True)
  assert x.shape == (2, 10, 16)
  assert len(layer.norms) == 2 and layer.conv1.bias is None and layer.conv2.bias is None
  moved = [norm.moving_mean.numpy() for norm in layer.norms]
  assert all(np.abs(m).max() > 0 for m in moved)  # moved from their zero start
  layer(feats, training=False)
  for norm, before in zip(layer.norms, moved):
    np.testing.assert_array_equal(norm.moving_mean.numpy(), before)
  plain = speech.Subsampler(16, speech.SpeechConfig(num_mels=8, conv_channels=4))
  plain(feats)
  assert plain.norms == [] and plain.conv1.bias is not None  # old checkpoints restore


def test_image_patches_and_shift_augmentation():
  spec = problem_lib.FeatureSpec("image", shape=(28, 28, 1))
  mod = adapters.get_modality("image")
  layer = mod.input_layer(spec, 0, 16)
  img = tf.random.uniform([3, 28, 28, 1], 0, 255, tf.int32)
  x, mask = layer({"": img})
  p = adapters.image.ImageConfig().patch_size
  assert x.shape == (3, (28 // p) ** 2, 16) and mask.shape == (3, (28 // p) ** 2)
  # The shift really shifts: each result is the image translated by at most 2 pixels
  # (zero-padded), a pure function of the seed, and seeds differ in their shifts.
  shift = adapters.ModalityConfigs(image=adapters.image.ImageConfig(random_shift=2))
  one = tf.cast(img[0], tf.uint8)
  padded = np.pad(one.numpy(), [[2, 2], [2, 2], [0, 0]])
  offsets = set()
  for s in range(12):
    seed = tf.constant([s, 1], tf.int64)
    out = mod.augment({"": one}, spec, seed, shift)[""].numpy()
    again = mod.augment({"": one}, spec, seed, shift)[""].numpy()
    np.testing.assert_array_equal(out, again)
    found = [(dy, dx) for dy in range(5) for dx in range(5)
             if np.array_equal(out, padded[dy:dy + 28, dx:dx + 28])]
    assert found, "augmented image is not a translation of the input"
    offsets.add(found[0])
  assert len(offsets) > 3


def test_token_dropout_replaces_input_tokens_with_unk_in_training_only():
  """Word dropout reaches the features through the input pipeline's own function: a
  share of the input's real tokens near the rate becomes UNK at training time, EOS and
  padding never do, the targets never do, evaluation features are untouched, and the
  choice is a pure function of the example's seed."""
  text = "the quick brown fox jumps over the lazy dog " * 2
  vocab = vocab_lib.CharVocab.train([text])
  p = problem_lib.Problem(
      name="token_dropout_test", builder=None, raw_subdir="", splits={},
      inputs=problem_lib.FeatureSpec("text", length=128),
      targets=problem_lib.FeatureSpec("text", length=128), metrics=(), to_raw=None)
  raw = {"inputs": tf.constant(text), "targets": tf.constant(text)}
  cfg = adapters.ModalityConfigs(text=adapters.text.TextConfig(token_dropout=0.25))

  def features(training, seed=0, modality_cfg=cfg):
    return data_lib.example_features(p, raw, vocab, training=training,
                                     seed=tf.constant([seed, 7], tf.int64),
                                     modality_cfg=modality_cfg)

  clean = features(training=False)
  n = len(text)
  assert np.count_nonzero(clean["inputs"].numpy() == vocab_lib.UNK_ID) == 0
  dropped = []
  for seed in range(8):
    ex = features(training=True, seed=seed)
    ids = ex["inputs"].numpy()
    np.testing.assert_array_equal(ids, features(training=True, seed=seed)["inputs"])
    np.testing.assert_array_equal(ex["targets"], clean["targets"])
    np.testing.assert_array_equal(ids[n:], clean["inputs"].numpy()[n:])  # EOS, PAD
    changed = ids[:n] != clean["inputs"].numpy()[:n]
    assert np.all(ids[:n][changed] == vocab_lib.UNK_ID)
    dropped.append(tuple(np.flatnonzero(changed)))
  assert 0.15 < np.mean([len(d) for d in dropped]) / n < 0.35
  assert len(set(dropped)) == 8  # seeds choose different tokens
  off = features(training=True, modality_cfg=adapters.ModalityConfigs())
  np.testing.assert_array_equal(off["inputs"], clean["inputs"])
  with pytest.raises(UserError, match="TextConfig.token_dropout=1.0"):
    adapters.text.TextConfig(token_dropout=1.0)


def _text_input(d=16, **text_cfg):
  """A text input layer with its own embedding (a text -> label problem's)."""
  cfg = adapters.ModalityConfigs(text=adapters.text.TextConfig(**text_cfg))
  return adapters.get_modality("text").input_layer(
      problem_lib.FeatureSpec("text", length=12), 50, d, modality_cfg=cfg)


def test_ngram_input_reads_only_nearby_real_tokens():
  """TextConfig.ngram_widths: [B, L, D] out; a token changes only the outputs within
  the widest convolution's reach; padding is read as nothing (one sentence gives the
  same outputs padded to 8 or to 12), without input positions as with them."""
  for positions in (True, False):
    layer = _text_input(ngram_widths=(3, 5), input_positions=positions)
    assert type(layer).__name__ == "NgramTokenInput"
    ids = np.array([[5, 6, 7, 8, 9, 10, 11, 2, 0, 0, 0, 0]], np.int32)  # 7 words, EOS
    x, mask = layer({"": tf.constant(ids)})
    assert x.shape == (1, 12, 16) and mask.numpy().tolist() == [[1] * 8 + [0] * 4]
    short, _ = layer({"": tf.constant(ids[:, :8])})
    np.testing.assert_allclose(short.numpy(), x.numpy()[:, :8], rtol=1e-5, atol=1e-5)
    other = ids.copy()
    other[0, 0] = 20
    y, _ = layer({"": tf.constant(other)})
    changed = np.flatnonzero(np.abs(y.numpy() - x.numpy()).max(-1)[0] > 1e-6)
    assert changed.tolist() == [0, 1, 2]  # width 5 reaches 2 tokens each side


def test_ngram_pool_is_one_summary_position_in_front():
  """TextConfig.ngram_pool: [B, 1+L, D] out, the first position unmasked and the same
  for one sentence padded to 8 or to 12 (padding is not in the max); the token
  positions are the layer's without pooling; output_length counts the extra one."""
  layer = _text_input(ngram_widths=(3, 5), ngram_pool=True)
  ids = np.array([[5, 6, 7, 8, 9, 10, 11, 2, 0, 0, 0, 0]], np.int32)
  x, mask = layer({"": tf.constant(ids)})
  assert x.shape == (1, 13, 16) and mask.numpy().tolist() == [[1] * 9 + [0] * 4]
  assert int(layer.output_length({"": tf.constant(ids)})) == 13
  short, _ = layer({"": tf.constant(ids[:, :8])})
  np.testing.assert_allclose(short.numpy(), x.numpy()[:, :9], rtol=1e-5, atol=1e-5)
  pool, layer.pool = layer.pool, None  # the same weights, without the summary
  tokens, _ = layer({"": tf.constant(ids)})
  layer.pool = pool
  np.testing.assert_allclose(tokens.numpy(), x.numpy()[:, 1:], rtol=1e-5, atol=1e-5)
  tokens8, _ = adapters.base.TokenInput.call(layer, {"": tf.constant(ids[:, :8])})
  maps = tf.concat([conv(tokens8) for conv in layer.convs], -1)  # [1, 8, 2D], no padding
  np.testing.assert_allclose(x.numpy()[:, 0], layer.pool(tf.reduce_max(maps, 1)).numpy(),
                             rtol=1e-5, atol=1e-5)               # Kim's max over time
  other = ids.copy()
  other[0, 6] = 20  # a word at the far end moves the summary too
  y, _ = layer({"": tf.constant(other)})
  assert np.abs(y.numpy()[0, 0] - x.numpy()[0, 0]).max() > 1e-6
  # Maps that are 0 on every word and 1 on padding far from words: still padding-blind.
  layer.embedding.embeddings.assign(tf.ones_like(layer.embedding.embeddings))
  for conv in layer.convs:
    conv.kernel.assign(-tf.ones_like(conv.kernel))
    conv.bias.assign(tf.ones_like(conv.bias))
  x, _ = layer({"": tf.constant(ids)})
  short, _ = layer({"": tf.constant(ids[:, :8])})
  np.testing.assert_allclose(short.numpy()[:, 0], x.numpy()[:, 0], rtol=1e-5, atol=1e-5)


def test_ngram_dropout_only_in_training():
  """TextConfig.ngram_dropout: training outputs differ from inference outputs, which
  equal the same weights' outputs without dropout."""
  layer = _text_input(ngram_widths=(3,), ngram_dropout=0.5)
  ids = tf.constant([[5, 6, 7, 8, 9, 2, 0, 0]], np.int32)
  infer, _ = layer({"": ids})
  train, _ = layer({"": ids}, training=True)
  assert np.abs(train.numpy() - infer.numpy()).max() > 1e-3
  layer.dropout = None
  plain, _ = layer({"": ids}, training=True)
  np.testing.assert_allclose(plain.numpy(), infer.numpy(), rtol=1e-6, atol=1e-6)
  with pytest.raises(UserError, match="TextConfig.ngram_dropout=1.0"):
    adapters.text.TextConfig(ngram_dropout=1.0)
  for field, value in (("ngram_dropout", 0.5), ("ngram_pool", True)):
    with pytest.raises(UserError, match=f"TextConfig.{field}=.*set TextConfig.ngram_widths"):
      adapters.text.TextConfig(**{field: value})


def test_input_positions_off_makes_the_text_input_a_set():
  """TextConfig.input_positions=False: each token's vector is its embedding alone, so
  the same token at two places gets one vector; with positions it gets two."""
  ids = tf.constant([[7, 7, 9, 2]], np.int32)
  layer = _text_input(input_positions=False)
  assert layer.positions is False and _text_input().positions is True
  off, _ = layer({"": ids})
  layer.positions = True  # the same weights, with positions
  on, _ = layer({"": ids})
  np.testing.assert_array_equal(off.numpy()[0, 0], off.numpy()[0, 1])
  assert np.abs(on.numpy()[0, 0] - on.numpy()[0, 1]).max() > 0.1
  np.testing.assert_allclose(on.numpy() - off.numpy(),
                             adapters.base.position_embedding(4, 16).numpy(), atol=1e-5)


@pytest.mark.parametrize("widths", [(0,), (3, 10), "3", (True,), (3, 3)])
def test_bad_ngram_widths_are_one_error(widths):
  with pytest.raises(UserError, match="TextConfig.ngram_widths=.*distinct widths in "
                                      "\\[1, 9\\]"):
    adapters.text.TextConfig(ngram_widths=widths)


def test_ngram_input_refuses_packed_rows():
  layer = _text_input(ngram_widths=(3,))
  with pytest.raises(UserError, match="not with TrainConfig.pack=True"):
    layer({"": tf.constant([[5, 6, 2, 7, 2]]), "positions": tf.constant([[0, 1, 2, 0, 1]])})


def test_label_roundtrip():
  spec = problem_lib.FeatureSpec("label", length=2, class_names=("a", "b", "c"))
  mod = adapters.get_modality("label")
  ids = mod.target_ids(tf.constant(2, tf.int64), spec, None).numpy().tolist()
  assert mod.postprocess(ids, spec, None) == 2
  assert mod.postprocess([0], spec, None) == -1
  assert mod.vocab_size(spec, None) == 3 + 3


def _conv_stem(patch_size):
  return adapters.ModalityConfigs(image=adapters.image.ImageConfig(stem="conv",
                                                                   patch_size=patch_size))


def test_conv_stem_gives_the_patch_grid():
  spec = problem_lib.FeatureSpec("image", shape=(28, 28, 1))
  layer = adapters.get_modality("image").input_layer(spec, 0, 16,
                                                     modality_cfg=_conv_stem(4))
  x, mask = layer({"": tf.zeros([2, 28, 28, 1], tf.uint8)})
  assert x.shape == (2, 49, 16)
  assert len(layer.stem) == 2  # two stride-2 3x3 convolutions make stride 4


def test_conv_stem_rounds_up_odd_sizes():
  spec = problem_lib.FeatureSpec("image", shape=(28, 28, 1))
  layer = adapters.get_modality("image").input_layer(spec, 0, 16,
                                                     modality_cfg=_conv_stem(8))
  x, _ = layer({"": tf.zeros([2, 28, 28, 1], tf.uint8)})
  assert x.shape == (2, 16, 16)  # 28 -> 14 -> 7 -> 4: a 4x4 grid
  assert len(layer.stem) == 3


def test_conv_stem_batch_norm_normalizes_in_training_and_uses_moving_stats_after():
  """The batch-normalized stem: same grid, no conv bias (the norm's offset replaces
  it), batch statistics in training (which move the moving averages) and the moving
  averages at inference (which leaves them alone)."""
  spec = problem_lib.FeatureSpec("image", shape=(28, 28, 1))
  cfg = adapters.ModalityConfigs(image=adapters.image.ImageConfig(
      stem="conv", patch_size=8, stem_batch_norm=True))
  layer = adapters.get_modality("image").input_layer(spec, 0, 16, modality_cfg=cfg)
  images = tf.random.stateless_uniform([4, 28, 28, 1], [1, 2], 0, 256, tf.int32)
  x, _ = layer({"": tf.cast(images, tf.uint8)}, training=True)
  assert x.shape == (4, 16, 16)
  assert len(layer.stem) == len(layer.stem_norms) == 3
  assert all(conv.bias is None for conv in layer.stem)
  norm = layer.stem_norms[0]
  assert {w.path.split("/")[-1] for w in norm.weights} == {
      "gamma", "beta", "moving_mean", "moving_variance"}
  assert np.abs(norm.moving_mean.numpy()).max() > 0  # moved from its zero start
  first = layer.stem[0](tf.cast(images, tf.float32) / 127.5 - 1.0)
  trained = norm(first, training=True).numpy()  # batch statistics: mean ~0 per channel
  assert np.abs(trained.mean(axis=(0, 1, 2))).max() < 1e-4
  before = norm.moving_mean.numpy()
  layer({"": tf.cast(images, tf.uint8)}, training=False)
  np.testing.assert_array_equal(norm.moving_mean.numpy(), before)


def test_conv_stem_without_batch_norm_keeps_its_variable_paths():
  """Checkpoints of runs before the option restore: the plain stem's convs keep their
  biases and names, and no norm layer is made."""
  spec = problem_lib.FeatureSpec("image", shape=(28, 28, 1))
  layer = adapters.get_modality("image").input_layer(spec, 0, 16,
                                                     modality_cfg=_conv_stem(8))
  layer({"": tf.zeros([2, 28, 28, 1], tf.uint8)})
  assert layer.stem_norms == []
  assert sorted(w.path for w in layer.weights) == sorted(
      [f"image_input/stem_{i}/{w}" for i in range(3) for w in ("kernel", "bias")] +
      ["image_input/proj/kernel", "image_input/proj/bias", "image_input/row_pos",
       "image_input/col_pos"])


def test_batch_norm_needs_the_conv_stem():
  spec = problem_lib.FeatureSpec("image", shape=(28, 28, 1))
  cfg = adapters.ModalityConfigs(image=adapters.image.ImageConfig(stem_batch_norm=True))
  with pytest.raises(ValueError, match="stem_batch_norm=True needs stem='conv'"):
    adapters.get_modality("image").input_layer(spec, 0, 16, modality_cfg=cfg)

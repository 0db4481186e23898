"""TrainConfig.cache: prepared features computed once, augmentation still fresh each epoch."""

import gin
import numpy as np
import pytest
import tensorflow as tf

from onemodel import adapters
from onemodel import data
from onemodel.adapters import speech


@pytest.fixture
def spec_augment():
  """SpecAugment on, passed explicitly (the library reads no gin)."""
  return adapters.ModalityConfigs(speech=speech.SpeechConfig(freq_mask=10, time_mask=10))


def test_augment_split_equals_training_features(problems, data_dir, spec_augment):
  """features(training=True) == augment(features(training=False)) for the same seed."""
  p = problems["fsdd"]
  vocab = data.get_vocab(p, data_dir)
  raw = p.to_raw(next(iter(data.raw_split(p, "train", data_dir))))
  seed = tf.constant([7, 3], tf.int64)
  whole = data.example_features(p, raw, vocab, training=True, seed=seed,
                                modality_cfg=spec_augment)
  split = data.augment_features(p, data.example_features(p, raw, vocab, training=False,
                                                         modality_cfg=spec_augment),
                                seed, spec_augment)
  assert set(whole) == set(split)
  for k in whole:
    np.testing.assert_array_equal(whole[k].numpy(), split[k].numpy(), err_msg=k)
  clean = data.example_features(p, raw, vocab, training=False,
                                modality_cfg=spec_augment)["inputs"].numpy()
  assert not np.array_equal(clean, whole["inputs"].numpy())  # masks were applied


def test_cached_epochs_share_features_but_not_masks(problems, data_dir, spec_augment):
  p = problems["fsdd"]
  n = data.train_size(p, data_dir)
  vocab = data.get_vocab(p, data_dir)
  ds = data.dataset(p, "train", data_dir, batch_size=1, training=True, vocab=vocab,
                    seed=0, shuffle_buffer=1, cache=True, deterministic=True,
                    modality_cfg=spec_augment)
  k = 24
  first = list(ds.take(k))
  second = list(ds.skip(n).take(k))  # the same examples, read back from the cache
  differ = 0
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a["targets"], b["targets"])
    np.testing.assert_array_equal(a["inputs_length"], b["inputs_length"])
    x, y = a["inputs"].numpy()[0], b["inputs"].numpy()[0]
    both = (x != 0) & (y != 0)  # outside either epoch's masks: the cached log-mel
    np.testing.assert_allclose(x[both], y[both], rtol=0, atol=0)
    differ += not np.array_equal(x, y)
  assert differ >= k // 2, f"only {differ}/{k} examples got new masks in epoch 2"


def test_cache_is_for_training_only(problems, data_dir):
  with pytest.raises(ValueError, match="training only"):
    data.dataset(problems["mnist"], "test", data_dir, 8, training=False, cache=True)


def test_cache_with_raw_augmentation_is_a_user_error(tmp_path, problems, data_dir,
                                                     manual_dir, isolated_registry):
  import dataclasses
  from onemodel import registry
  from onemodel import trainer as trainer_lib
  from onemodel.errors import UserError
  registry.register_problem(dataclasses.replace(problems["mnist"], name="mnist_shifted",
                                                augment=lambda x: x))
  gin.parse_config(["TrainConfig.problem = 'mnist_shifted'", "TrainConfig.cache = True"])
  with pytest.raises(UserError, match=r"TrainConfig.cache=True: problem mnist_shifted"):
    trainer_lib.Trainer(str(tmp_path), data_dir, manual_dir)

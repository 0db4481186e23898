"""Honest splits: periodic evaluation ('eval' role) never reads the test split; mnist and
fsdd hold out part of their real training data for it."""

import hashlib
import os

import numpy as np
import pytest

from onemodel import data as data_lib


def _hashes(ds, key):
  return {hashlib.sha1(np.ascontiguousarray(ex[key]).tobytes()).hexdigest()
          for ex in ds.as_numpy_iterator()}


@pytest.mark.parametrize("name", ["mnist", "fsdd", "multi30k_en_de", "sst2"])
def test_eval_role_is_not_the_test_split(name, problems):
  p = problems[name]
  assert p.splits["eval"] != p.splits["test"]
  assert p.splits["eval"] != p.splits["train"]


def test_mnist_validation_is_held_out_training_data(data_dir, problems, manual_dir):
  p = problems["mnist"]
  with np.load(os.path.join(manual_dir, "mnist", "mnist.npz")) as d:
    x_train = d["x_train"]
  val = _hashes(data_lib.raw_split(p, "eval", data_dir).map(lambda ex: ex), "image")
  expected = {hashlib.sha1(np.ascontiguousarray(x[..., None]).tobytes()).hexdigest()
              for x in x_train[:5000]}
  assert val == expected  # the first 5,000 training images, none from the test file
  info = data_lib.builder(p, data_dir).info.splits
  assert info[p.splits["train"]].num_examples == len(x_train) - 5000
  train = _hashes(data_lib.raw_split(p, "train", data_dir).take(5000), "image")
  assert not train & val


def test_fsdd_validation_is_other_takes_of_the_training_speakers(data_dir, problems):
  p = problems["fsdd"]
  splits = {role: list(data_lib.raw_split(p, role, data_dir).as_numpy_iterator())
            for role in ("train", "eval", "test")}
  assert [len(splits[r]) for r in ("train", "eval", "test")] == [2400, 300, 300]
  speakers = {r: {ex["speaker"] for ex in exs} for r, exs in splits.items()}
  assert speakers["eval"] == speakers["train"] == speakers["test"]
  audio = {r: {ex["audio"].tobytes() for ex in exs} for r, exs in splits.items()}
  assert not audio["eval"] & audio["train"] and not audio["eval"] & audio["test"]

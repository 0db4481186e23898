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


def _row_hashes(batches, key):
  return [hashlib.sha1(np.ascontiguousarray(row).tobytes()).hexdigest()
          for b in batches for row in b[key].numpy()]


def test_train_split_trains_on_that_subset_only(tmp_path, data_dir, manual_dir, problems):
  """TrainConfig.train_split (a TFDS split spec): the training pipeline reads only those
  examples, epoch after epoch; per_problem overrides it for one problem of a mixture."""
  import gin
  from onemodel import trainer as trainer_lib
  gin.parse_config_files_and_bindings(["gin/models/tiny.gin"], [
      "joint/Mixture.name = 'mnist_fsdd_subset'",
      "joint/Mixture.problems = ['mnist', 'fsdd']",
      "TrainConfig.problem = @joint/Mixture()", "TrainConfig.batch_size = 16",
      "TrainConfig.train_split = 'train[:64]'",
      "TrainConfig.per_problem = {'fsdd': {'train_split': 'train[:10%]'}}"])
  t = trainer_lib.Trainer(str(tmp_path), data_dir, manual_dir)
  assert [p.splits["train"] for p in t.problems] == ["train[:64]", "train[:10%]"]
  assert [p.splits["eval"] for p in t.problems] == ["validation", "validation"]
  assert data_lib.train_size(t.problems[1], data_dir) == 240
  # TFDS writes a split's records in a shuffled order: its first 10% (the small-data
  # run of benchmarks/transfer.py) holds every speaker and every digit.
  small = list(data_lib.raw_split(t.problems[1], "train", data_dir).as_numpy_iterator())
  assert len({ex["speaker"] for ex in small}) == 6
  assert len({ex["transcript"] for ex in small}) == 10
  it = iter(t.strategy.distribute_datasets_from_function(
      lambda ctx: t.dataset(ctx, t.problems[0])))
  seen = _row_hashes([next(it) for _ in range(12)], "inputs")  # 3 epochs of 64
  first = _row_hashes(data_lib.dataset(problems["mnist"], "train", data_dir, 64,
                                       training=False).take(1), "inputs")
  assert len(seen) == 192 and set(seen) == set(first)
  assert sorted(seen[:64]) == sorted(first)  # whole epochs: each image once per epoch


@pytest.mark.parametrize("param,needle", [
    ("TrainConfig.train_split='train[:abc]'", "TrainConfig.train_split='train[:abc]'"),
    ("TrainConfig.train_split='train[:0]'", "no examples of problem mnist"),
    ("TrainConfig.per_problem={'mnist': {'train_split': 'trian'}}",
     "TrainConfig.per_problem['mnist']['train_split']='trian': not a split"),
    ("TrainConfig.train_split='all[:10%]'", "not a split of problem mnist"),
    # Never the held-out records: mnist's validation split is its first 5,000 images.
    ("TrainConfig.train_split='train[:10%]+validation'",
     "not inside problem mnist's training split 'train'"),
])
def test_a_bad_train_split_is_one_line(tmp_path, data_dir, manual_dir, param, needle):
  from conftest import cli, one_line_error, train_args
  rc, _, se = cli("onemodel-train", *train_args(
      tmp_path / "run", data_dir, manual_dir,
      ["TrainConfig.problem='mnist'", "TrainConfig.train_steps=2", param]))
  one_line_error(rc, se, needle)


SST_SMALL = '''
from onemodel import problem, sources
problem.register(sources.problem(
    "sst_small", sources.Delimited({"train": "train.tsv", "validation": "dev.tsv"},
                                   {"inputs": ("sentence", "content"), "targets": "label"}),
    inputs=problem.FeatureSpec("text", length=32, vocab=problem.VocabSpec(size=300)),
    targets=problem.FeatureSpec("label", length=2, class_names=("neg", "pos"))))
'''


def test_a_subset_run_learns_the_whole_splits_vocabulary(tmp_path, manual_dir):
  """The vocabulary is learned before train_split narrows the training split, so a
  subset run and a full run share one vocabulary (and can warm-start each other)."""
  from conftest import cli, tiny_gin
  plug, raw = tmp_path / "plug", tmp_path / "raw" / "sst_small"
  plug.mkdir()
  raw.mkdir(parents=True)
  (plug / "sst_small.py").write_text(SST_SMALL)
  for name, rows in (("train.tsv", 401), ("dev.tsv", 41)):  # header + rows
    with open(os.path.join(manual_dir, "sst2", name), encoding="utf-8") as f:
      raw.joinpath(name).write_text("".join(f.readlines()[:rows]), encoding="utf-8")
  flags = [f"--usr_dir={plug}", f"--manual_dir={raw.parent}"]
  rc, _, se = cli("onemodel-prepare", "--problem=sst_small", *flags,
                  f"--data_dir={tmp_path / 'full'}")
  assert rc == 0, se[-3000:]
  rc, so, se = cli("onemodel-train", *tiny_gin("sst_small", 2, [
      "TrainConfig.train_split='train[:40]'", "TrainConfig.final_eval_role=''"]), *flags,
                   f"--data_dir={tmp_path / 'subset'}", f"--output_dir={tmp_path / 'run'}")
  assert rc == 0, se[-3000:]
  assert "training on 'train[:40]', 40 examples" in so + se
  spm = lambda d: (tmp_path / d / "vocab" / "sst_small" / "spm300.model").read_bytes()
  assert spm("subset") == spm("full")

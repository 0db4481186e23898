"""TFDS catalog problems: a dataset missing from --data_dir fails in seconds with one
line saying how to prepare it (never TFDS's ~205 s download retries); a dataset
prepared in --data_dir loads with no network call."""

import time

import pytest

from conftest import cli, is_catalog, one_line_error
from onemodel import data as data_lib
from onemodel import registry
from onemodel.errors import UserError

CATALOG = ["cifar10", "imagenet2012", "librispeech", "wmt14_en_de", "wmt14_en_fr",
           "coco_captions", "lm1b"]


def test_catalog_problems_are_registered(problems):
  assert {n for n, p in problems.items() if is_catalog(p)} == set(CATALOG)


@pytest.mark.parametrize("name", CATALOG)
def test_missing_catalog_dataset_fails_fast(name, tmp_path, problems):
  start = time.time()
  with pytest.raises(UserError) as e:
    data_lib.prepare(problems[name], str(tmp_path), str(tmp_path / "raw"))
  assert time.time() - start < 10
  msg = str(e.value)
  assert f"problem {name}: TFDS catalog dataset" in msg and str(tmp_path) in msg
  assert f"onemodel-prepare --problem={name} --download" in msg


def test_missing_catalog_dataset_from_the_cli(tmp_path):
  start = time.time()
  rc, so, se = cli("onemodel-train", "--gin_file=gin/models/tiny.gin",
                   "--gin_param=TrainConfig.problem='cifar10'",
                   f"--output_dir={tmp_path / 'run'}", f"--data_dir={tmp_path / 'data'}",
                   timeout=60)
  one_line_error(rc, se, "cifar10:3.0.2", str(tmp_path / "data"))
  assert time.time() - start < 30  # process start and TF import included


def test_prepared_catalog_dataset_loads_offline(tmp_path, monkeypatch, manual_dir,
                                               problems):
  """A dataset TFDS prepared in --data_dir (as `tfds build` on another machine would)
  loads by its catalog name with every socket blocked. The stand-in catalog dataset is
  a TFDS-registered builder over real MNIST digits."""
  import socket
  import numpy as np
  import tensorflow_datasets as tfds
  from onemodel.sources import catalog

  class CatalogStandIn(tfds.core.GeneratorBasedBuilder):  # registered in TFDS by name
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "image": tfds.features.Image(shape=(28, 28, 1)),
          "label": tfds.features.ClassLabel(num_classes=10)}))

    def _split_generators(self, dl_manager):
      with np.load(f"{manual_dir}/mnist/mnist.npz") as d:
        x, y = d["x_test"][:40], d["y_test"][:40]
      return {"train": self._generate_examples(x[:30], y[:30]),
              "test": self._generate_examples(x[30:], y[30:])}

    def _generate_examples(self, x, y):
      for i, (img, label) in enumerate(zip(x, y)):
        yield i, {"image": img[..., None], "label": int(label)}

  data = str(tmp_path / "data")
  tfds.builder("catalog_stand_in", data_dir=data).download_and_prepare()

  def no_network(*args):
    raise AssertionError(f"network call to {args[1:]}")

  monkeypatch.setattr(socket.socket, "connect", no_network)
  mnist = problems["mnist"]
  p = catalog.catalog_problem(
      "stand_in", "catalog_stand_in:1.0.0", {"inputs": "image", "targets": "label"},
      inputs=mnist.inputs, targets=mnist.targets,
      splits={"train": "train[:20]", "eval": "train[20:]", "test": "test"})
  data_lib.prepare(p, data, str(tmp_path / "raw"))  # already there: nothing to do
  sizes = {r: sum(1 for _ in data_lib.raw_split(p, r, data)) for r in p.splits}
  assert sizes == {"train": 20, "eval": 10, "test": 10}
  assert data_lib.train_size(p, data) == 20

"""Datasets of the TFDS catalog by name (as seqio's `TfdsDataSource`): a problem on
`name/config:version` with a mapping of its features, read from `--data_dir` only.

    sources.catalog_problem("cifar10", "cifar10:3.0.2", {"inputs": "image", "targets": "label"},
                            inputs=..., targets=..., splits=...)

Nothing is fetched unless the user asks (`onemodel-prepare --problem=NAME --download`):
TFDS's own download retries for about 205 s on a machine without network before it
fails, so a dataset missing from `--data_dir` is one line, at once, saying how to prepare
it. A dataset prepared elsewhere (`tfds build NAME --data_dir=DIR`, or any
`tfds.load`) and copied into `--data_dir` loads without any network call."""

import os
from typing import Any, Callable, Mapping, Optional, Tuple

from onemodel import problem as problem_lib


class CatalogBuilder:
  """Called like a builder class (`builder(data_dir=...)`): the catalog's TFDS builder.

  manual_files: for datasets TFDS cannot download (imagenet2012), the files the user
  puts in `--manual_dir/RAW_SUBDIR` before `onemodel-prepare --problem=NAME --download`."""

  def __init__(self, problem_name: str, dataset: str, manual_files: Tuple[str, ...] = ()):
    self.problem_name, self.dataset = problem_name, dataset
    self.RAW_FILES = ()  # nothing local is needed to load a prepared dataset
    self.HAS_DOWNLOAD = True
    self.manual_files = tuple(manual_files)

  def __call__(self, data_dir: str):
    import tensorflow_datasets as tfds
    return tfds.builder(self.dataset, data_dir=data_dir)

  def not_prepared_error(self, data_dir: str) -> str:
    name = self.dataset.split(":")[0].split("/")[0]
    how = (f"put {', '.join(self.manual_files)} in --manual_dir/{self.problem_name} and run "
           if self.manual_files else "on a machine with internet run ")
    return (f"problem {self.problem_name}: TFDS catalog dataset {self.dataset} is not in "
            f"{data_dir}; {how}`onemodel-prepare --problem={self.problem_name} --download "
            f"--data_dir=DIR` (or `tfds build {self.dataset}`) and copy DIR/{name} into "
            f"{data_dir}")


def _mapper(features: Mapping[str, Any]) -> Callable:
  """role -> a feature key of the catalog example, or a function of the example."""
  def to_raw(ex):
    return {role: (f(ex) if callable(f) else ex[f]) for role, f in features.items()}
  return to_raw


def catalog_problem(name: str, dataset: str, features: Mapping[str, Any], targets,
                    splits: Mapping[str, str], inputs=None, metrics: Tuple[str, ...] = (),
                    description: str = "", manual_files: Tuple[str, ...] = (),
                    augment: Optional[Callable] = None) -> problem_lib.Problem:
  """A `Problem` on the catalog dataset `dataset` ('name/config:version').

  features: role ('inputs', 'targets') -> the dataset's feature key, or a function of a
    TFDS example (tf ops; e.g. the first caption, a resized image).
  splits: role -> TFDS split, slicing allowed (`'train[:45000]'`): carve a validation
    split from train when the dataset has none, so the eval role never reads test."""
  if not metrics:  # language modelling (no inputs): the loss per token (perplexity)
    metrics = ("loss_per_token",) if inputs is None else \
        ("accuracy",) if targets.modality == "label" else ("bleu",)
  return problem_lib.Problem(
      name=name, builder=CatalogBuilder(name, dataset, manual_files), raw_subdir=name,
      inputs=inputs, targets=targets, splits=dict(splits), metrics=tuple(metrics),
      to_raw=_mapper(features), description=description or f"TFDS catalog {dataset}",
      augment=augment)


def center_crop(image, size: int):
  """Resize the shorter side to size * 8/7, then crop the center size x size (the usual
  ImageNet evaluation preprocessing: 256 -> 224); uint8 out."""
  import tensorflow as tf
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  scale = (size * 8.0 / 7.0) / tf.reduce_min(shape)
  resized = tf.image.resize(image, tf.cast(tf.round(shape * scale), tf.int32))
  out = tf.image.resize_with_crop_or_pad(resized, size, size)
  return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)


def label_names_file(path: str) -> Tuple[str, ...]:
  with open(path, encoding="utf-8") as f:
    return tuple(line.strip() for line in f if line.strip())


def tfds_resource(relative: str) -> str:
  import tensorflow_datasets as tfds
  return os.path.join(os.path.dirname(tfds.__file__), relative)

"""Generic sources: a common raw layout -> a TFDS dataset, with no builder code.

A `Source` says which files make up each split and yields raw examples from them; this
module turns it into a `tfds.core.GeneratorBasedBuilder` (prepared offline from the
manual directory into `--data_dir`, exactly like the built-in builders) and a `Problem`.
Values are converted by the feature specs' modalities (`values.py`): a class name or
index for a label, a file path for an image or a WAV, a string for text. A corrupt
example is skipped and counted with its file and reason; a split left with no example
at all is one error naming its files.
"""

import os
from typing import Dict, Iterator, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow_datasets as tfds

from onemodel import problem as problem_lib
from onemodel import rawdata
from onemodel.errors import UserError
import onemodel.sources.values as values

Example = Tuple[str, Dict[str, object]]


class Source:
  """A raw layout. Subclasses are frozen dataclasses (values, as problems are)."""

  def splits(self) -> Sequence[str]:
    """TFDS split names, e.g. ('train', 'validation', 'test')."""
    raise NotImplementedError

  def raw_files(self) -> Tuple[str, ...]:
    """Files or folders (relative to the problem's raw dir) that must exist."""
    raise NotImplementedError

  def examples(self, split: str, raw_dir: str, specs, skipped) -> Iterator[Example]:
    """(unique key, {role: converted value}) for `split`; `convert` each raw value and
    call `skipped.skip(where, reason)` for a `values.BadValue`."""
    raise NotImplementedError

  def describe(self) -> str:
    return repr(self)


def tfds_feature(spec):
  """The TFDS feature that stores one side of a problem, by modality."""
  if spec.modality == "text":
    return tfds.features.Text()
  if spec.modality == "label":
    return tfds.features.ClassLabel(names=list(spec.class_names))
  if spec.modality == "image":
    return tfds.features.Image(shape=tuple(spec.shape))
  if spec.modality == "speech":
    return tfds.features.Tensor(shape=(None,), dtype=np.int16)
  raise ValueError(f"no generic TFDS feature for modality {spec.modality!r}")


def convert(value, spec, base_dir: str = ""):
  """A raw value (string from a table, a path, ...) -> the stored value; BadValue."""
  if spec.modality == "text":
    return values.text(value)
  if spec.modality == "label":
    return values.label(value, spec.class_names)
  if spec.modality == "image":
    return values.image(values.resolve(values.text(value), base_dir), spec.shape)
  if spec.modality == "speech":
    return values.wav(values.resolve(values.text(value), base_dir), spec.sample_rate)
  raise ValueError(f"no generic conversion for modality {spec.modality!r}")


class SourceBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """The builder of every generic source; `builder_class` makes one per problem."""
  VERSION = tfds.core.Version("1.0.0")
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Place the raw files in --manual_dir/RAW_SUBDIR."
  SOURCE: Optional[Source] = None
  SPECS: Mapping = {}
  PROBLEM = ""

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description=f"{self.PROBLEM}: {self.SOURCE.describe()}",
        features=tfds.features.FeaturesDict(
            {role: tfds_feature(spec) for role, spec in self.SPECS.items()}))

  def _split_generators(self, dl_manager):
    raw_dir = os.fspath(dl_manager.manual_dir)
    return {s: self._generate_examples(s, raw_dir) for s in self.SOURCE.splits()}

  def _generate_examples(self, split, raw_dir):
    skipped = rawdata.SkipCounter(f"{self.PROBLEM} {split}")
    n = 0
    for key, ex in self.SOURCE.examples(split, raw_dir, self.SPECS, skipped):
      n += 1
      yield key, ex
    skipped.report()
    if not n:
      why = f" (all {skipped.count} skipped, e.g. {skipped.reasons[0]})" if skipped.count \
          else ""
      raise UserError(f"problem {self.PROBLEM}: split {split!r} has no usable example in "
                      f"{raw_dir}{why}")


def builder_class(name: str, source: Source, specs: Mapping, version: str = "1.0.0"):
  """A `SourceBuilder` subclass for problem `name` (TFDS name `onemodel_NAME`)."""
  return type(f"SourceBuilder_{name}", (SourceBuilder,), {
      "name": f"onemodel_{name}", "VERSION": tfds.core.Version(version),
      "SOURCE": source, "SPECS": dict(specs), "PROBLEM": name,
      "RAW_FILES": tuple(source.raw_files()), "__module__": __name__,
  }, skip_registration=True)


def _to_raw(ex):
  return {role: ex[role] for role in ("inputs", "targets") if role in ex}


HOLDOUT = "10%"  # of train, held out for the eval role when there is no validation split


def default_splits(split_names: Sequence[str]) -> Dict[str, str]:
  """Roles from split names. eval reads 'validation' when there is one; else the first
  10% of train is held out for it (TFDS split slicing), so periodic evaluation never
  reads the test split. test reads 'test' (else 'validation')."""
  names = list(split_names)
  if "train" not in names:
    raise ValueError(f"a source needs a 'train' split, it has {', '.join(names)}")
  if "validation" in names:
    return {"train": "train", "eval": "validation",
            "test": "test" if "test" in names else "validation"}
  if "test" not in names:
    raise ValueError("a source needs a 'validation' or 'test' split besides 'train'")
  return {"train": f"train[{HOLDOUT}:]", "eval": f"train[:{HOLDOUT}]", "test": "test"}


def problem(name: str, source: Source, targets, inputs=None,
            metrics: Tuple[str, ...] = (), raw_subdir: str = "",
            splits: Optional[Mapping[str, str]] = None, description: str = "",
            version: str = "1.0.0") -> problem_lib.Problem:
  """A `Problem` reading `source` from `--manual_dir/raw_subdir` (default: `name`).

  inputs/targets: `FeatureSpec`s; inputs None for language modelling.
  metrics: default accuracy for a label target, bleu for text.
  splits: role -> split name; default from the source's splits (`default_splits`).
  version: bump it when the source's files or definition change (prepared data is
    cached in --data_dir under onemodel_NAME/VERSION)."""
  specs = {"targets": targets} if inputs is None else {"inputs": inputs, "targets": targets}
  if not metrics:  # language modelling (no inputs): the loss per token (perplexity)
    metrics = ("loss_per_token",) if inputs is None else \
        ("accuracy",) if targets.modality == "label" else ("bleu",)
  return problem_lib.Problem(
      name=name, builder=builder_class(name, source, specs, version),
      raw_subdir=raw_subdir or name, inputs=inputs, targets=targets,
      splits=dict(splits or default_splits(source.splits())), metrics=tuple(metrics),
      to_raw=_to_raw, description=description or source.describe())

"""`Problem`: a named dataset plus the feature specs that tell the model how to read it.

A problem is a value, registered under a stable name. It names a TFDS builder (the real
data), says which raw field is the input and which the target, and gives each a
`FeatureSpec`: the modality (which adapter reads it) and the sizes that come from the
data (image shape, sample rate, class names, vocabulary). Sizes flow from here into the
adapters; they are never repeated in gin.
"""

import dataclasses
from typing import Any, Callable, Mapping, Optional, Tuple

from onemodel import registry
from onemodel.adapters import speech
from onemodel.errors import UserError


@dataclasses.dataclass(frozen=True)
class VocabSpec:
  """How a text feature's vocabulary is made from the problem's training text.

  kind: 'sentencepiece' (subwords learned with SentencePiece, tokenized in-graph by
    tf-text) or 'char' (one id per character, exact per-character losses).
  size: the vocabulary size asked for (sentencepiece only; small corpora give fewer).
  max_texts: learn from at most this many training texts, read in the split's order
    (0: all). Large corpora (lm1b's 30 M sentences) need a cap: SentencePiece's own
    documentation suggests a sample of about a million sentences.
  """
  kind: str = "sentencepiece"
  size: int = 8000
  max_texts: int = 0


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
  """One side (inputs or targets) of a problem.

  modality: name of a registered adapter ('image', 'speech', 'text', 'label').
  length: static padded length in the modality's own unit (tokens for text and labels,
    audio samples for speech); longer examples are truncated, shorter ones padded.
  shape: image (height, width, channels).
  sample_rate: speech, in Hz.
  class_names: label names, index = class id.
  vocab: text vocabulary recipe.
  patch_size: image patch size for this problem (0: the model-wide
    `ImageConfig.patch_size`, adapted to the image size; see adapters/image.py).
  front_end: speech front-end settings of this problem, overriding the model-wide
    `SpeechConfig` field by field, e.g. {"num_mels": 40, "hop_ms": 20.0,
    "time_mask": 20} (8 kHz digits and 16 kHz read speech rarely want the same).
  """
  modality: str
  length: int = 0
  shape: Tuple[int, ...] = ()
  sample_rate: int = 0
  class_names: Tuple[str, ...] = ()
  vocab: Optional[VocabSpec] = None
  patch_size: int = 0
  front_end: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):  # frozen and hashable: the overrides as sorted pairs
    object.__setattr__(self, "front_end", tuple(sorted(dict(self.front_end).items())))


@dataclasses.dataclass(frozen=True)
class Problem:
  """A registered problem.

  name: registry name, ^[a-z0-9_]+$.
  builder: the TFDS `GeneratorBasedBuilder` class that prepares the real data.
  raw_subdir: where the raw files live below `--manual_dir`.
  inputs: input spec, or None for language modelling (targets only).
  targets: target spec; every target is emitted as tokens by the shared decoder.
  splits: role -> TFDS split name; roles 'train', 'eval' (validation), 'test'.
  metrics: names from `onemodel.metrics.METRICS`.
  to_raw: TFDS example -> {'inputs': tensor, 'targets': tensor} (raw values).
  augment: optional training-time augmentation of the raw inputs (a tf function).
  """
  name: str
  builder: type
  raw_subdir: str
  inputs: Optional[FeatureSpec]
  targets: FeatureSpec
  splits: Mapping[str, str]
  metrics: Tuple[str, ...]
  to_raw: Callable
  description: str = ""
  augment: Optional[Callable] = None

  def __post_init__(self):
    for role, spec in self.features():
      if spec.front_end:
        speech.check_front_end(f"problem {self.name}: {role} FeatureSpec.front_end", spec)
      if spec.modality == "image" and spec.patch_size:
        h, w = spec.shape[:2]
        if spec.patch_size < 1 or h % spec.patch_size or w % spec.patch_size:
          raise UserError(f"problem {self.name}: {role} FeatureSpec.patch_size="
                          f"{spec.patch_size} does not divide its {h}x{w} images")

  @property
  def lm(self) -> bool:
    """Language modelling: targets only, cut into windows of `targets.length`."""
    return self.inputs is None

  def features(self):
    """(role, spec) pairs of the problem's features."""
    out = [("targets", self.targets)]
    if self.inputs is not None:
      out.insert(0, ("inputs", self.inputs))
    return out

  def text_specs(self):
    return [(role, s) for role, s in self.features() if s.modality == "text"]


def register(problem: Problem) -> Problem:
  return registry.register_problem(problem)

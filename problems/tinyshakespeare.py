"""tinyshakespeare: character-level language modelling (Karpathy's char-rnn data).

input.txt, 1,115,394 characters; the first 90% is train, the last 10% validation (as
nanoGPT's shakespeare_char). Stored as 1024-character chunks; training draws random
256-character windows from them, evaluation cuts each chunk into full windows. The
metric is the validation loss per character (reference: 1.47 for a 6x384 GPT, about
1.88 for a small CPU config)."""

import tensorflow_datasets as tfds

from onemodel import problem as problem_lib
from onemodel import rawdata

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
CHUNK = 1024


class OnemodelTinyshakespeare(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  name = "onemodel_tinyshakespeare"
  VERSION = tfds.core.Version("1.0.0")
  RAW_FILES = ("input.txt",)
  HAS_DOWNLOAD = True
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Place char-rnn's tinyshakespeare input.txt in the manual dir."

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description="Tiny Shakespeare, 1024-character chunks.",
        features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
        homepage="https://github.com/karpathy/char-rnn")

  def _split_generators(self, dl_manager):
    path = rawdata.local_or_download(dl_manager, {"input.txt": URL})["input.txt"]
    text = rawdata.read_text(path)
    cut = int(len(text) * 0.9)
    return {"train": self._generate_examples(text[:cut], "train"),
            "validation": self._generate_examples(text[cut:], "validation", cut)}

  def _generate_examples(self, text, split, offset=0):
    skipped = rawdata.SkipCounter(f"tinyshakespeare {split}")
    for i in range(0, len(text), CHUNK):
      chunk = text[i:i + CHUNK]
      bad = rawdata.utf8_error(chunk)
      if bad:  # bytes that are not UTF-8: the chunk is skipped, not mis-decoded
        skipped.skip(f"input.txt characters {offset + i}..{offset + i + len(chunk)}", bad)
        continue
      yield i, {"text": chunk}
    skipped.report()


problem_lib.register(problem_lib.Problem(
    name="tinyshakespeare",
    builder=OnemodelTinyshakespeare,
    raw_subdir="tinyshakespeare",
    inputs=None,
    targets=problem_lib.FeatureSpec("text", length=256, vocab=problem_lib.VocabSpec("char")),
    splits={"train": "train", "eval": "validation", "test": "validation"},
    metrics=("loss_per_token",),
    to_raw=lambda ex: {"targets": ex["text"]},
    description="Tiny Shakespeare character-level language modelling"))

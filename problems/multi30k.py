"""multi30k_en_de: Multi30k task 1 (Elliott et al. 2016), English -> German.

Raw, untokenized, cased, line-aligned gz files: train (29000), val (1014),
test_2016_flickr (1000). A pair with an empty side or bytes that are not UTF-8 is
skipped and counted; a truncated gz file is one error naming it. BLEU is
sacrebleu on detokenized text (SentencePiece decodes losslessly). Reference test2016
BLEU: tutorial Transformers 34-36, a small tuned Transformer 41.0."""

import os

import tensorflow_datasets as tfds

from onemodel import problem as problem_lib
from onemodel import rawdata
from onemodel.errors import UserError

BASE = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"
SPLITS = {"train": "train", "validation": "val", "test": "test_2016_flickr"}


class OnemodelMulti30kEnDe(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  name = "onemodel_multi30k_en_de"
  VERSION = tfds.core.Version("1.0.0")
  RAW_FILES = tuple(f"{s}.{l}.gz" for s in SPLITS.values() for l in ("en", "de"))
  HAS_DOWNLOAD = True
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Place Multi30k task1 raw *.{en,de}.gz in the manual dir."

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description="Multi30k task 1 English-German image descriptions.",
        features=tfds.features.FeaturesDict({"en": tfds.features.Text(),
                                             "de": tfds.features.Text()}),
        supervised_keys=("en", "de"),
        homepage="https://github.com/multi30k/dataset")

  def _split_generators(self, dl_manager):
    paths = rawdata.local_or_download(dl_manager, {f: BASE + f for f in self.RAW_FILES})
    return {split: self._generate_examples(paths[f"{stem}.en.gz"], paths[f"{stem}.de.gz"],
                                           split)
            for split, stem in SPLITS.items()}

  def _generate_examples(self, en_path, de_path, split):
    skipped = rawdata.SkipCounter(f"multi30k_en_de {split}")
    en_lines = rawdata.read_text(en_path).split("\n")
    de_lines = rawdata.read_text(de_path).split("\n")
    if en_lines and en_lines[-1] == "" and de_lines and de_lines[-1] == "":
      en_lines, de_lines = en_lines[:-1], de_lines[:-1]  # trailing newline
    if len(en_lines) != len(de_lines):
      raise UserError(f"{en_path} has {len(en_lines)} lines but {de_path} has "
                      f"{len(de_lines)}: the files of a split must be aligned by line")
    for i, (en, de) in enumerate(zip(en_lines, de_lines)):
      en, de = en.strip(), de.strip()
      bad = (rawdata.utf8_error(en) and f"{os.path.basename(en_path)}: "
             f"{rawdata.utf8_error(en)}") or (rawdata.utf8_error(de) and
             f"{os.path.basename(de_path)}: {rawdata.utf8_error(de)}")
      if bad or not en or not de:
        skipped.skip(f"line {i + 1}", bad or "empty line")
        continue
      yield i, {"en": en, "de": de}
    skipped.report()


problem_lib.register(problem_lib.Problem(
    name="multi30k_en_de",
    builder=OnemodelMulti30kEnDe,
    raw_subdir="multi30k",
    inputs=problem_lib.FeatureSpec("text", length=64,
                                   vocab=problem_lib.VocabSpec("sentencepiece", 8000)),
    targets=problem_lib.FeatureSpec("text", length=64,
                                    vocab=problem_lib.VocabSpec("sentencepiece", 8000)),
    splits={"train": "train", "eval": "validation", "test": "test"},
    metrics=("bleu",),
    to_raw=lambda ex: {"inputs": ex["en"], "targets": ex["de"]},
    description="Multi30k English -> German translation"))

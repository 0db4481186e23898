"""Mixtures of any data: per-problem manual directories, and `onemodel-prepare
--problem=MIXTURE` preparing every member and the vocabularies the run reads (one shared
by the text-target problems, a classifier's own)."""

import gzip
import os
import textwrap

import pytest

from conftest import cli, one_line_error, tiny_gin
from onemodel import rawdata
from onemodel.errors import UserError

PLUGIN = '''
from onemodel import mixtures, problem, sources
text = problem.FeatureSpec("text", length=32, vocab=problem.VocabSpec(size=300))
problem.register(sources.problem(
    "m30k_small", sources.ParallelText({"train": ("train.en", "train.de"),
                                        "validation": ("val.en", "val.de")}),
    inputs=text, targets=text))
problem.register(sources.problem(
    "rev_small", sources.ParallelText({"train": ("train.de", "train.en"),
                                       "validation": ("val.de", "val.en")}),
    inputs=text, targets=text))
problem.register(sources.problem(
    "sst_small", sources.Delimited({"train": "train.tsv", "validation": "dev.tsv"},
                                   {"inputs": ("sentence", "content"), "targets": "label"}),
    inputs=text, targets=problem.FeatureSpec("label", length=2, class_names=("neg", "pos"))))
mixtures.register(mixtures.Mixture(name="small_text_mix",
                                   problems=("m30k_small", "rev_small", "sst_small")))
'''


def _head(path, n):
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rt", encoding="utf-8", newline="") as f:
    return "".join(f.readlines()[:n]) if not path.endswith(".gz") else \
        "\n".join(f.read().split("\n")[:n]) + "\n"


def _small_text_mix(tmp_path, manual_dir):
  """The plugin and its raw files: m30k_small under a root, sst_small elsewhere (and
  rev_small, German -> English, reads m30k_small's directory)."""
  plug = tmp_path / "plug"
  plug.mkdir()
  (plug / "small.py").write_text(PLUGIN)
  root = tmp_path / "root" / "m30k_small"  # the root layout: ROOT/PROBLEM/
  root.mkdir(parents=True)
  for stem, n in (("train", 300), ("val", 100)):
    for lang in ("en", "de"):
      (root / f"{stem}.{lang}").write_text(
          _head(os.path.join(manual_dir, "multi30k", f"{stem}.{lang}.gz"), n))
  elsewhere = tmp_path / "my_copies" / "sentiment"  # sst_small's own directory
  elsewhere.mkdir(parents=True)
  for name, n in (("train.tsv", 301), ("dev.tsv", 101)):
    (elsewhere / name).write_text(_head(os.path.join(manual_dir, "sst2", name), n))
  return plug, elsewhere


SHARED = "shared_sentencepiece_m30k_small_rev_small"


def _manual_dirs(tmp_path, elsewhere):
  root = tmp_path / "root"
  return f"--manual_dir={root},sst_small={elsewhere},rev_small={root / 'm30k_small'}"


def test_a_joint_run_learns_only_the_vocabularies_it_reads(tmp_path, manual_dir):
  # The translators' own vocabularies would be learned for nothing (about 20 s of the
  # README's first command on a fresh machine); the classifier's is its own.
  plug, elsewhere = _small_text_mix(tmp_path, manual_dir)
  data = tmp_path / "data"
  rc, so, se = cli("onemodel-train", *tiny_gin("small_text_mix", 2), f"--usr_dir={plug}",
                   _manual_dirs(tmp_path, elsewhere),
                   f"--data_dir={data}", f"--output_dir={tmp_path / 'run'}",
                   "--gin_param=TrainConfig.final_eval_role=''")
  assert rc == 0, se[-3000:]
  assert sorted(os.listdir(data / "vocab")) == [SHARED, "sst_small"]


def test_prepare_mixture_with_per_problem_manual_dirs(tmp_path, manual_dir):
  plug, elsewhere = _small_text_mix(tmp_path, manual_dir)
  data = tmp_path / "data"
  rc, so, se = cli("onemodel-prepare", "--problem=small_text_mix", f"--usr_dir={plug}",
                   _manual_dirs(tmp_path, elsewhere), f"--data_dir={data}")
  assert rc == 0, se[-3000:]
  assert all(f"prepared {p}" in so for p in ("m30k_small", "rev_small", "sst_small"))
  assert ("prepared mixture small_text_mix (m30k_small, rev_small, sst_small; "
          "vocabularies: SentencePieceVocab (m30k_small, rev_small); "
          "SentencePieceVocab (sst_small))") in so
  assert (data / "vocab" / SHARED / "spm300.model").exists()
  assert (data / "vocab" / "sst_small" / "spm300.model").exists()
  # Not the translators' own: the run reads the shared one.
  assert sorted(os.listdir(data / "vocab")) == [SHARED, "sst_small"]

  rc, so, se = cli("onemodel-prepare", "--problem=small_text_mix", f"--usr_dir={plug}",
                   f"--manual_dir=sst_small={elsewhere}", f"--data_dir={tmp_path / 'd2'}")
  one_line_error(rc, se, "problem m30k_small", "m30k_small=DIR")


def test_parse_manual_dirs():
  assert rawdata.parse_manual_dirs("/data") == ("/data", {})
  assert rawdata.parse_manual_dirs("/data,fsdd=/x/rec") == ("/data", {"fsdd": "/x/rec"})
  assert rawdata.parse_manual_dirs("a=/1,b=/2") == (None, {"a": "/1", "b": "/2"})
  with pytest.raises(UserError, match="two roots"):
    rawdata.parse_manual_dirs("/data,/other")

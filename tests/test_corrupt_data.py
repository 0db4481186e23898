"""Corrupt raw examples are skipped and counted (file and reason); preparation goes on.
A file that cannot be read as a whole is one error naming it."""

import dataclasses
import gzip
import os
import shutil
import zipfile

import numpy as np
import pytest

from conftest import cli, one_line_error
from onemodel import data as data_lib
from onemodel import sources
from onemodel.errors import UserError


def test_fsdd_skips_unreadable_wav(tmp_path, manual_dir, problems, capsys):
  rec = tmp_path / "manual" / "fsdd" / "recordings"
  rec.mkdir(parents=True)
  src = os.path.join(manual_dir, "fsdd", "recordings")
  # Digit 0 of george: idx 0, 1 (test), 5, 6 (validation), 10-17 (train).
  keep = [f"0_george_{i}.wav" for i in (0, 1, 5, 6, *range(10, 18))]
  for f in keep:
    shutil.copy(os.path.join(src, f), rec / f)
  shutil.copy(os.path.join(src, "0_jackson_0.wav"), rec / "0_jackson_0.wav")
  (rec / "3_jackson_17.wav").write_bytes(b"RIFF\x00\x00not a wav at all")
  p = problems["fsdd"]
  data_lib.prepare(p, str(tmp_path / "prepared"), str(tmp_path / "manual"))
  out = capsys.readouterr().out
  assert "fsdd train: skipped 1 corrupt example(s)" in out and "3_jackson_17.wav" in out
  n = sum(1 for role in ("train", "eval", "test")
          for _ in data_lib.raw_split(p, role, str(tmp_path / "prepared")))
  assert n == len(keep) + 1


def test_multi30k_skips_empty_lines(tmp_path, manual_dir, problems, capsys):
  d = tmp_path / "manual" / "multi30k"
  d.mkdir(parents=True)
  for stem in ("train", "val", "test_2016_flickr"):
    for lang in ("en", "de"):
      with gzip.open(os.path.join(manual_dir, "multi30k", f"{stem}.{lang}.gz"), "rt") as f:
        lines = f.read().split("\n")[:20]
      if stem == "train" and lang == "de":
        lines[5] = "   "  # an empty German side
      with gzip.open(d / f"{stem}.{lang}.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")
  p = problems["multi30k_en_de"]
  data_lib.prepare(p, str(tmp_path / "prepared"), str(tmp_path / "manual"))
  assert "multi30k_en_de train: skipped 1 corrupt example(s)" in capsys.readouterr().out
  assert sum(1 for _ in data_lib.raw_split(p, "train", str(tmp_path / "prepared"))) == 19


# --- whole files that cannot be read, stray files, bytes that are not UTF-8 -------------


@pytest.fixture(scope="module")
def mnist_arrays(manual_dir):
  with np.load(os.path.join(manual_dir, "mnist", "mnist.npz")) as d:
    return {k: d[k][:5200] if k.endswith("train") else d[k][:100] for k in d.files}


def _prepare_mnist(tmp_path, problems, **arrays):
  d = tmp_path / "manual" / "mnist"
  d.mkdir(parents=True)
  np.savez(d / "mnist.npz", **arrays)
  data_lib.prepare(problems["mnist"], str(tmp_path / "prepared"), str(tmp_path / "manual"))


def test_mnist_npz_with_wrong_keys_shapes_or_labels_is_one_error(tmp_path, problems,
                                                                  mnist_arrays):
  a = mnist_arrays
  npz = str(tmp_path / "{}" / "manual" / "mnist" / "mnist.npz")
  cases = {
      "keys": ({"images": a["x_train"], "labels": a["y_train"]}, "no array x_train"),
      "flat": ({**a, "x_train": a["x_train"].reshape(-1, 784)}, "x_train is uint8 (5200, 784)"),
      "float": ({**a, "x_test": a["x_test"] / 255.0}, "x_test is float64"),
      "labels_1_10": ({**a, "y_train": a["y_train"] + 1}, "outside 0..9"),
      "short_labels": ({**a, "y_test": a["y_test"][:50]}, "y_test is"),
  }
  for case, (arrays, needle) in cases.items():
    with pytest.raises(UserError) as e:
      _prepare_mnist(tmp_path / case, problems, **arrays)
    assert needle in str(e.value) and npz.format(case) in str(e.value), str(e.value)


def test_truncated_npz_is_one_line_from_the_cli(tmp_path, manual_dir):
  d = tmp_path / "manual" / "mnist"
  d.mkdir(parents=True)
  data = open(os.path.join(manual_dir, "mnist", "mnist.npz"), "rb").read()
  (d / "mnist.npz").write_bytes(data[:len(data) // 2])
  rc, so, se = cli("onemodel-prepare", "--problem=mnist", f"--manual_dir={tmp_path / 'manual'}",
                   f"--data_dir={tmp_path / 'prepared'}")
  one_line_error(rc, se, str(d / "mnist.npz"), "not a readable npz")
  with pytest.raises(zipfile.BadZipFile):  # the file really is broken
    np.load(d / "mnist.npz")["x_train"]


def test_fsdd_stray_files_are_skipped_and_counted(tmp_path, manual_dir, problems, capsys):
  rec = tmp_path / "manual" / "fsdd" / "recordings"
  rec.mkdir(parents=True)
  src = os.path.join(manual_dir, "fsdd", "recordings")
  for f in ["0_jackson_0.wav"] + [f"1_theo_{i}.wav" for i in (1, 6, 12, 13)]:
    shutil.copy(os.path.join(src, f), rec / f)
  (rec / "README.txt").write_text("notes")
  shutil.copy(os.path.join(src, "2_theo_20.wav"), rec / "copy of 2_theo_20.wav")
  data_lib.prepare(problems["fsdd"], str(tmp_path / "prepared"), str(tmp_path / "manual"))
  out = capsys.readouterr().out
  assert "fsdd recordings: skipped 2 corrupt example(s)" in out
  assert "README.txt" in out and "copy of 2_theo_20.wav" in out


def test_fsdd_with_an_empty_split_is_one_error(tmp_path, manual_dir, problems):
  rec = tmp_path / "manual" / "fsdd" / "recordings"
  rec.mkdir(parents=True)
  src = os.path.join(manual_dir, "fsdd", "recordings")
  for f in ("0_jackson_0.wav", "0_jackson_20.wav"):  # no validation take (idx 5-9)
    shutil.copy(os.path.join(src, f), rec / f)
  with pytest.raises(UserError) as e:
    data_lib.prepare(problems["fsdd"], str(tmp_path / "prepared"), str(tmp_path / "manual"))
  assert "problem fsdd" in str(e.value) and '"validation"' in str(e.value)
  assert str(rec) in str(e.value)


def _multi30k_copy(manual_dir, d, n=20, edit=None):
  d.mkdir(parents=True)
  for stem in ("train", "val", "test_2016_flickr"):
    for lang in ("en", "de"):
      with gzip.open(os.path.join(manual_dir, "multi30k", f"{stem}.{lang}.gz"), "rb") as f:
        lines = f.read().split(b"\n")[:n]
      if edit:
        lines = edit(stem, lang, lines)
      with gzip.open(d / f"{stem}.{lang}.gz", "wb") as f:
        f.write(b"\n".join(lines) + b"\n")


def test_multi30k_non_utf8_line_skipped_truncated_gzip_one_error(tmp_path, manual_dir,
                                                                problems, capsys):
  def latin1_line(stem, lang, lines):
    if stem == "train" and lang == "de":
      lines[3] = lines[3].decode("utf-8").replace("ü", "ü").encode("latin-1") + b"\xfc"
    return lines
  _multi30k_copy(manual_dir, tmp_path / "manual" / "multi30k", edit=latin1_line)
  p = problems["multi30k_en_de"]
  data_lib.prepare(p, str(tmp_path / "prepared"), str(tmp_path / "manual"))
  out = capsys.readouterr().out
  assert "multi30k_en_de train: skipped 1 corrupt example(s)" in out
  assert "line 4: train.de.gz: not UTF-8" in out

  bad = tmp_path / "bad" / "multi30k"
  _multi30k_copy(manual_dir, bad, n=2000)
  data = (bad / "val.en.gz").read_bytes()
  (bad / "val.en.gz").write_bytes(data[:len(data) // 2])
  with pytest.raises(UserError) as e:
    data_lib.prepare(p, str(tmp_path / "bad_prepared"), str(tmp_path / "bad"))
  assert f"{bad / 'val.en.gz'} is corrupt or truncated" in str(e.value)

  short = tmp_path / "short" / "multi30k"
  _multi30k_copy(manual_dir, short,
                 edit=lambda s, l, lines: lines[:-1] if (s, l) == ("val", "de") else lines)
  with pytest.raises(UserError, match="aligned by line"):
    data_lib.prepare(p, str(tmp_path / "short_prepared"), str(tmp_path / "short"))


def test_tinyshakespeare_non_utf8_chunk_skipped(tmp_path, manual_dir, problems, capsys):
  d = tmp_path / "manual" / "tinyshakespeare"
  d.mkdir(parents=True)
  text = open(os.path.join(manual_dir, "tinyshakespeare", "input.txt"), "rb").read()[:20000]
  (d / "input.txt").write_bytes(text[:5000] + b"\xff\xfe" + text[5000:])
  p = problems["tinyshakespeare"]
  data_lib.prepare(p, str(tmp_path / "prepared"), str(tmp_path / "manual"))
  assert "tinyshakespeare train: skipped 1 corrupt example(s)" in capsys.readouterr().out
  n = sum(1 for _ in data_lib.raw_split(p, "train", str(tmp_path / "prepared")))
  assert n == -(-18001 // 1024) - 1


def _sst2_copy(manual_dir, d, n=300, encode=None):
  d.mkdir(parents=True)
  for name in ("train.tsv", "dev.tsv", "test.tsv"):
    text = open(os.path.join(manual_dir, "sst2", name), encoding="utf-8", newline="").read()
    lines = text.splitlines(keepends=True)[:n]
    (d / name).write_bytes((encode or {}).get(name, lambda s: s.encode("utf-8"))(
        "".join(lines)))


def test_delimited_skips_bad_rows_with_file_and_line(tmp_path, manual_dir, problems, capsys):
  d = tmp_path / "manual" / "sst2"
  # test.tsv in Latin-1: its accented lines ("crème brûlée", line 3) are not UTF-8.
  _sst2_copy(manual_dir, d, encode={"test.tsv": lambda s: s.encode("latin-1")})
  with open(d / "dev.tsv", "a", encoding="utf-8") as f:
    f.write("2\ta label out of range\n")
    f.write("1\tone tab\ttoo many\n")
  p = problems["sst2"]
  data_lib.prepare(p, str(tmp_path / "prepared"), str(tmp_path / "manual"))
  out = capsys.readouterr().out
  assert "sst2 validation: skipped 2 corrupt example(s)" in out
  assert "dev.tsv:301: label 2 out of range 0..1" in out
  assert "dev.tsv:302: 3 fields, the header has 2" in out
  assert "sst2 test: skipped" in out and "test.tsv:3: not UTF-8" in out


def test_delimited_whole_file_errors(tmp_path, manual_dir, problems):
  p = problems["sst2"]
  d = tmp_path / "utf16" / "sst2"
  _sst2_copy(manual_dir, d, encode={"dev.tsv": lambda s: s.encode("utf-16")})
  with pytest.raises(UserError) as e:
    data_lib.prepare(p, str(tmp_path / "p1"), str(tmp_path / "utf16"))
  assert f"{d / 'dev.tsv'}" in str(e.value) and "UTF-8" in str(e.value)

  d = tmp_path / "gz" / "sst2"
  d.mkdir(parents=True)
  gz_problem = dataclasses.replace(p, name="sst2_gz", builder=sources.problem(
      "sst2_gz", sources.Delimited({"train": "train.tsv.gz", "test": "test.tsv.gz"},
                                   {"inputs": ("sentence", "content"), "targets": "label"}),
      inputs=p.inputs, targets=p.targets).builder, raw_subdir="sst2")
  for name in ("train.tsv", "test.tsv"):
    data = gzip.compress(open(os.path.join(manual_dir, "sst2", name), "rb").read())
    (d / f"{name}.gz").write_bytes(data[:len(data) // 3] if name == "test.tsv" else data)
  with pytest.raises(UserError) as e:
    data_lib.prepare(gz_problem, str(tmp_path / "p2"), str(tmp_path / "gz"))
  assert f"{d / 'test.tsv.gz'} is corrupt or truncated" in str(e.value)


def test_download_suggested_only_where_a_download_exists(tmp_path, problems):
  empty = str(tmp_path / "empty")
  with pytest.raises(UserError) as e:
    data_lib.prepare(problems["mnist"], str(tmp_path / "p"), empty)
  assert "or pass --download" in str(e.value)
  with pytest.raises(UserError) as e:
    data_lib.prepare(problems["sst2"], str(tmp_path / "p"), empty)
  assert "--download" not in str(e.value) and os.path.join(empty, "sst2") in str(e.value)
  with pytest.raises(UserError, match="it has no download URL"):
    data_lib.prepare(problems["sst2"], str(tmp_path / "p"), empty, download=True)

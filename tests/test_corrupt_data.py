"""Corrupt raw examples are skipped and counted; preparation goes on."""

import gzip
import os
import shutil

from onemodel import data as data_lib


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

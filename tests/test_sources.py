"""Generic sources on real data laid out the way users have it: MNIST digits as PNG
files in class folders, Multi30k as parallel text files, FSDD WAVs with a transcript
manifest, an image + caption list, SST-2 rows as CSV and JSON lines. Each is checked
end to end with the public test kit (onemodel.testing)."""

import csv
import gzip
import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from onemodel import data as data_lib
from onemodel import problem as problem_lib
from onemodel import sources
from onemodel import testing

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGITS = problem_lib.FeatureSpec("label", length=2, class_names=tuple(map(str, range(10))))


@pytest.fixture(scope="module")
def mnist(manual_dir):
  with np.load(os.path.join(manual_dir, "mnist", "mnist.npz")) as d:
    return d["x_train"][:200], d["y_train"][:200], d["x_test"][:60], d["y_test"][:60]


def _write_pngs(root, images, labels, split):
  paths = []
  for i, (img, label) in enumerate(zip(images, labels)):
    d = root / split / str(label)
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{i:05d}.png").write_bytes(tf.io.encode_png(img[..., None]).numpy())
    paths.append((f"{split}/{label}/{i:05d}.png", int(label)))
  return paths


def _digests(ds, key):
  return sorted(hashlib.sha1(ex[key].tobytes()).hexdigest() for ex in ds.as_numpy_iterator())


def test_image_folder_of_mnist_pngs(tmp_path, mnist, capsys):
  x_train, y_train, x_test, y_test = mnist
  raw = tmp_path / "manual" / "digits_png"
  _write_pngs(raw, x_train, y_train, "train")
  _write_pngs(raw, x_test, y_test, "test")
  (raw / "train" / "3" / "notes.txt").write_text("not an image")        # stray file
  (raw / "train" / "unsorted").mkdir()                                   # not a class
  (raw / "train" / "unsorted" / "a.png").write_bytes(
      tf.io.encode_png(x_train[0][..., None]).numpy())
  for f in (raw / "test" / "9").iterdir():  # a class folder left empty
    f.unlink()
  big = tf.image.resize(x_train[1][..., None], [32, 32]).numpy().astype(np.uint8)
  (raw / "train" / "1" / "big.png").write_bytes(tf.io.encode_png(big).numpy())
  p = sources.problem("digits_png", sources.ImageFolder({"train": "train", "test": "test"}),
                      inputs=problem_lib.FeatureSpec("image", shape=(28, 28, 1)),
                      targets=DIGITS)
  # No validation folder: 10% of train is held out for the eval role, test stays apart.
  assert p.splits == {"train": "train[10%:]", "eval": "train[:10%]", "test": "test"}
  data_dir = str(tmp_path / "prepared")
  testing.check_problem(p, str(tmp_path / "manual"), data_dir, jit_compile=False)
  out = capsys.readouterr().out
  assert "digits_png train: skipped 3 corrupt example(s)" in out
  assert "notes.txt: not a readable image" in out
  assert "unsorted/a.png: folder 'unsorted' is not a class name" in out
  empty = [l for l in out.splitlines() if l.startswith("onemodel: warning: test: no images")]
  assert len(empty) == 1 and "'9'" in empty[0], out  # ('8' too: none in these 60)
  assert "warning: train: no images" not in out
  train = data_lib.raw_split(p, "train", data_dir).concatenate(
      data_lib.raw_split(p, "eval", data_dir))
  assert data_lib.train_size(p, data_dir) == 180
  assert _digests(train, "inputs") == sorted(
      hashlib.sha1(x[..., None].tobytes()).hexdigest() for x in x_train)
  labels = sorted(int(ex["targets"]) for ex in train.as_numpy_iterator())
  assert labels == sorted(y_train.tolist())


def test_parallel_text_files_of_multi30k(tmp_path, manual_dir):
  raw = tmp_path / "manual" / "m30k"
  raw.mkdir(parents=True)
  lines = {}
  for lang in ("en", "de"):
    with gzip.open(os.path.join(manual_dir, "multi30k", f"train.{lang}.gz"), "rt",
                   encoding="utf-8") as f:
      lines[lang] = f.read().split("\n")[:300]
    (raw / f"train.{lang}").write_text("\n".join(lines[lang]) + "\n", encoding="utf-8")
    os.symlink(os.path.join(manual_dir, "multi30k", f"val.{lang}.gz"), raw / f"val.{lang}.gz")
  text = problem_lib.FeatureSpec("text", length=32, vocab=problem_lib.VocabSpec(size=500))
  p = sources.problem("m30k_plain", sources.ParallelText(
      {"train": ("train.en", "train.de"), "validation": ("val.en.gz", "val.de.gz")}),
      inputs=text, targets=text, raw_subdir="m30k")
  assert p.metrics == ("bleu",)
  data_dir = str(tmp_path / "prepared")
  testing.check_problem(p, str(tmp_path / "manual"), data_dir, jit_compile=False,
                        export=False)
  pairs = {(ex["inputs"].decode(), ex["targets"].decode())
           for ex in data_lib.raw_split(p, "train", data_dir).as_numpy_iterator()}
  assert pairs == {(e.strip(), d.strip()) for e, d in zip(lines["en"], lines["de"])}
  n_val = int(data_lib.raw_split(p, "eval", data_dir).reduce(0, lambda c, _: c + 1))
  assert n_val == 1014


def test_audio_manifest_of_fsdd_wavs(tmp_path, manual_dir):
  raw = tmp_path / "manual" / "spoken"
  raw.mkdir(parents=True)
  os.symlink(os.path.join(manual_dir, "fsdd", "recordings"), raw / "clips")
  for split, takes in (("train", range(10, 14)), ("test", range(0, 2))):
    with open(raw / f"{split}.tsv", "w", encoding="utf-8") as f:
      f.write("path\ttranscript\n")
      for digit in range(10):
        for take in takes:
          f.write(f"clips/{digit}_theo_{take}.wav\t{WORDS[digit]}\n")
  p = sources.problem(
      "spoken_words", sources.Delimited({"train": "train.tsv", "test": "test.tsv"},
                                        {"inputs": "path", "targets": "transcript"}),
      inputs=problem_lib.FeatureSpec("speech", length=8000, sample_rate=8000),
      targets=problem_lib.FeatureSpec("text", length=8, vocab=problem_lib.VocabSpec(size=40)),
      metrics=("wer", "accuracy"), raw_subdir="spoken")
  data_dir = str(tmp_path / "prepared")
  testing.check_problem(p, str(tmp_path / "manual"), data_dir, jit_compile=False,
                        evaluate=False)
  got = sorted((ex["targets"].decode(), len(ex["inputs"]))
               for ex in data_lib.raw_split(p, "test", data_dir).as_numpy_iterator())
  import wave
  want = []
  for digit in range(10):
    for take in range(2):
      with wave.open(os.path.join(manual_dir, "fsdd", "recordings",
                                  f"{digit}_theo_{take}.wav")) as w:
        want.append((WORDS[digit], w.getnframes()))
  assert got == sorted(want)


def test_image_caption_list(tmp_path, mnist):
  x_train, y_train, x_test, y_test = mnist
  raw = tmp_path / "manual" / "captions"
  for split, xs, ys in (("train", x_train, y_train), ("validation", x_test, y_test)):
    rows = _write_pngs(raw / "images", xs, ys, split)
    with open(raw / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
      w = csv.writer(f)
      w.writerow(["image", "caption"])
      for path, label in rows:
        w.writerow([f"images/{path}", f"a handwritten {WORDS[label]}, in grey"])
  p = sources.problem(
      "digit_captions", sources.Delimited({"train": "train.csv", "validation": "validation.csv"},
                                          {"inputs": "image", "targets": "caption"}),
      inputs=problem_lib.FeatureSpec("image", shape=(28, 28, 1)),
      targets=problem_lib.FeatureSpec("text", length=12, vocab=problem_lib.VocabSpec(size=60)),
      raw_subdir="captions")
  data_dir = str(tmp_path / "prepared")
  testing.check_problem(p, str(tmp_path / "manual"), data_dir, jit_compile=False,
                        evaluate=False, export=False)
  caps = {ex["targets"].decode()
          for ex in data_lib.raw_split(p, "eval", data_dir).as_numpy_iterator()}
  assert caps == {f"a handwritten {WORDS[y]}, in grey" for y in y_test}


def test_csv_and_jsonl_tables_read_like_the_tsv(tmp_path, manual_dir):
  raw = tmp_path / "manual" / "sst_tables"
  raw.mkdir(parents=True)
  with open(os.path.join(manual_dir, "sst2", "dev.tsv"), encoding="utf-8", newline="") as f:
    rows = [l.rstrip("\r\n").split("\t") for l in f][1:]
  with open(raw / "dev.csv", "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)  # SST-2 sentences hold commas and quotes: CSV must quote them
    w.writerow(["text", "sentiment"])
    w.writerows([[text, ["negative", "positive"][int(label)]] for label, text in rows])
  with gzip.open(raw / "dev.jsonl.gz", "wt", encoding="utf-8") as f:
    for label, text in rows:
      f.write(json.dumps({"text": text, "sentiment": int(label)}) + "\n")
  specs = dict(inputs=problem_lib.FeatureSpec("text", length=64,
                                              vocab=problem_lib.VocabSpec(size=800)),
               targets=problem_lib.FeatureSpec("label", length=2,
                                               class_names=("negative", "positive")))
  want = sorted((text.strip(), int(label)) for label, text in rows)
  for name, fname in (("sst_csv", "dev.csv"), ("sst_jsonl", "dev.jsonl.gz")):
    p = sources.problem(name, sources.Delimited(
        {"train": fname, "validation": fname}, {"inputs": "text", "targets": "sentiment"}),
        raw_subdir="sst_tables", **specs)
    data_dir = str(tmp_path / name)
    data_lib.prepare(p, data_dir, str(tmp_path / "manual"))
    got = sorted((ex["inputs"].decode(), int(ex["targets"]))
                 for ex in data_lib.raw_split(p, "train", data_dir).as_numpy_iterator())
    assert got == want, name

"""SavedModel export with raw-input signatures, onemodel-predict in a fresh process with
onemodel's own packages blocked, onemodel-decode, and checkpoint averaging."""

import gzip
import os
import sys
import textwrap

import gin
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, cli, tiny_gin
from onemodel import adapters, decoding, export
from onemodel import data as data_lib
from onemodel import trainer as trainer_lib

N = 6  # examples compared per modality
TRAIN_STEPS = {"mnist": 100, "fsdd": 300, "multi30k_en_de": 200}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir, manual_dir):
  """Tiny models trained on each input modality (one CLI run each); the classifiers
  long enough that their predictions differ from input to input: parity with the
  Python model must not hold merely because an untrained model says the same thing
  for everything."""
  root = tmp_path_factory.mktemp("runs")
  out = {}
  for problem, steps in TRAIN_STEPS.items():
    d = str(root / problem)
    rc, so, se = cli("onemodel-train", *tiny_gin(problem, steps, [
        "TrainConfig.final_eval_role=''", "TrainConfig.steps_per_loop=50",
        "TrainConfig.log_every_steps=50", f"TrainConfig.checkpoint_every_steps={steps}",
        "TrainConfig.batch_size=32"]),
                     f"--output_dir={d}", f"--data_dir={data_dir}",
                     f"--manual_dir={manual_dir}")
    assert rc == 0, se[-3000:]
    out[problem] = d
  return out


@pytest.fixture(scope="module")
def exports(runs, data_dir, manual_dir, tmp_path_factory):
  """Each run exported once; shared by the tests below."""
  out = {}
  for problem, run_dir in runs.items():
    t = _load(run_dir, data_dir, manual_dir)
    d = str(tmp_path_factory.mktemp("export") / problem)
    export.export(export.Servable(t.model, [t.problem], {problem: t.vocab},
                                  decoding.DecodeConfig()), d)
    out[problem] = d
  return out


def _load(run_dir, data_dir, manual_dir):
  gin.clear_config()
  gin.parse_config_files_and_bindings([os.path.join(run_dir, "config.gin")], [])
  t = trainer_lib.Trainer(run_dir, data_dir, manual_dir)
  t.restore()
  return t


def _raw_inputs(problem, manual_dir, tmp_path):
  """N real inputs as files (what a client sends) and as raw values (what TFDS holds)."""
  if problem == "fsdd":
    from problems import fsdd
    rec = os.path.join(manual_dir, "fsdd", "recordings")
    names = [f"{d}_theo_{i}.wav" for d, i in zip(range(N), range(N))]
    return [os.path.join(rec, n) for n in names], [fsdd.read_wav(os.path.join(rec, n))
                                                   for n in names]
  if problem == "mnist":
    with np.load(os.path.join(manual_dir, "mnist", "mnist.npz")) as d:
      images = d["x_test"][:N, :, :, None]
    files = []
    for i, img in enumerate(images):
      f = tmp_path / f"digit_{i}.png"
      f.write_bytes(tf.io.encode_png(img).numpy())
      files.append(str(f))
    return files, list(images)
  with gzip.open(os.path.join(manual_dir, "multi30k", "test_2016_flickr.en.gz"), "rt") as fh:
    lines = fh.read().split("\n")[:N]
  f = tmp_path / "sentences.en"
  f.write_text("\n".join(lines) + "\n")
  return [str(f)], lines


def _python_outputs(t, raws):
  """The Python model on the raw values, through the training-time feature code."""
  p = t.problem
  feats = [data_lib.example_features(p, {"inputs": tf.constant(r), "targets": tf.constant(
      0 if p.targets.modality == "label" else "")}, t.vocab, training=False,
      modality_cfg=t.model.modality_cfg) for r in raws]
  batch = {k: tf.stack([f[k] for f in feats]) for k in feats[0]}
  ids, _ = decoding.decode(t.model, p.name, batch, p.targets.length)
  tmod = adapters.get_modality(p.targets.modality)
  outs = [tmod.postprocess(decoding.strip_eos(r), p.targets, t.vocab) for r in ids.numpy()]
  if p.targets.modality == "label":
    outs = [p.targets.class_names[k] if k >= 0 else "" for k in outs]
  return outs


BLOCKED_PREDICT = textwrap.dedent("""
    import runpy, sys
    class Block:
      def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('onemodel', 'problems'):
          raise ImportError('onemodel is blocked in this process: ' + name)
    sys.meta_path.insert(0, Block())
    sys.argv = ['onemodel-predict'] + sys.argv[1:]
    runpy.run_path(%r, run_name='__main__')
""") % os.path.join(ROOT, "onemodel", "cli", "predict.py")


def _predict(*args):
  import subprocess
  proc = subprocess.run([sys.executable, "-c", BLOCKED_PREDICT, *args], capture_output=True,
                        text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("problem", ["fsdd", "mnist", "multi30k_en_de"])
def test_saved_model_matches_python_model(problem, runs, exports, data_dir, manual_dir,
                                          tmp_path):
  t = _load(runs[problem], data_dir, manual_dir)
  files, raws = _raw_inputs(problem, manual_dir, tmp_path)
  expected = _python_outputs(t, raws)
  if problem == "multi30k_en_de":  # sentences of several different words
    assert all(len(set(e.split())) >= 2 for e in expected), expected
  else:  # a trained classifier: its answers differ from input to input
    assert len(set(expected)) >= 3, expected
  export_dir = exports[problem]
  assert os.path.exists(os.path.join(export_dir, "saved_model.pb"))
  rc, so, se = _predict(f"--saved_model={export_dir}", *files)
  assert rc == 0, se[-3000:]
  got = [line.split("\t")[1] for line in so.strip("\n").split("\n")]
  assert got == expected


def test_saved_model_bad_inputs_are_clear_errors(exports, manual_dir, tmp_path):
  for problem, bad_name, bad_bytes, needle in (
      ("fsdd", "corrupt.wav", b"RIFF....WAVEfmt garbage", "WAV"),
      ("mnist", "not_an_image.png", b"hello, I am text", "not a PNG"),
      ("multi30k_en_de", "empty.txt", b"\n", "empty input text")):
    export_dir = exports[problem]
    bad = tmp_path / bad_name
    bad.write_bytes(bad_bytes)
    good = _raw_inputs(problem, manual_dir, tmp_path)[0][:1]
    rc, so, se = _predict(f"--saved_model={export_dir}", *good, str(bad))
    assert rc == 1
    errors = [l for l in se.splitlines() if l.startswith("onemodel-predict: error:")]
    assert len(errors) == 1 and bad_name in errors[0] and needle in errors[0], se[-2000:]
    assert "Traceback" not in se
    assert len(so.strip().splitlines()) >= 1  # the good input was still answered


def test_decode_cli_text_with_refs_and_beam(runs, data_dir, manual_dir, tmp_path):
  src, lines = _raw_inputs("multi30k_en_de", manual_dir, tmp_path)
  refs = tmp_path / "refs.de"
  with gzip.open(os.path.join(manual_dir, "multi30k", "test_2016_flickr.de.gz"), "rt") as fh:
    refs.write_text("\n".join(fh.read().split("\n")[:N]) + "\n")
  out = tmp_path / "out.de"
  rc, so, se = cli("onemodel-decode", f"--output_dir={runs['multi30k_en_de']}",
                   f"--data_dir={data_dir}", f"--manual_dir={manual_dir}",
                   f"--decode_from_file={src[0]}", f"--decode_to_file={out}",
                   f"--decode_refs={refs}", "--gin_param=DecodeConfig.method='beam'",
                   "--gin_param=DecodeConfig.beam_size=2")
  assert rc == 0, se[-3000:]
  assert len(out.read_text().splitlines()) == N
  assert any(l.startswith(f"bleu ") and f"on {N} examples" in l for l in se.splitlines())


def test_decode_cli_bad_inputs(runs, data_dir, manual_dir, tmp_path):
  base = [f"--output_dir={runs['fsdd']}", f"--data_dir={data_dir}",
          f"--manual_dir={manual_dir}"]
  rc, so, se = cli("onemodel-decode", *base, f"--decode_from_file={tmp_path / 'nope.txt'}")
  assert rc == 1 and "onemodel-decode: error: --decode_from_file" in se
  d = tmp_path / "clips"
  d.mkdir()
  (d / "broken.wav").write_bytes(b"not a wav")
  rc, so, se = cli("onemodel-decode", *base, f"--decode_from_dir={d}")
  errors = [l for l in se.splitlines() if l.startswith("onemodel-decode: error:")]
  assert rc == 1 and len(errors) == 1 and "WAV" in errors[0]
  assert "Traceback" not in se


def test_averaging_identical_checkpoints_is_identity(runs, data_dir, manual_dir, tmp_path):
  from onemodel import averaging
  t = _load(runs["mnist"], data_dir, manual_dir)
  before = [v.numpy().copy() for v in t.model.variables]
  t.manager.save(checkpoint_number=100)
  t.manager.save(checkpoint_number=101)
  path = averaging.average_checkpoints(t, 3, str(tmp_path / "avg"))
  fresh = _load(runs["mnist"], data_dir, manual_dir)
  fresh.restore(path)
  for a, b in zip(before, fresh.model.variables):
    np.testing.assert_allclose(a, b.numpy(), rtol=1e-6, atol=1e-7)


def test_averaging_two_checkpoints_is_their_mean(runs, data_dir, manual_dir, tmp_path):
  from onemodel import averaging
  t = _load(runs["fsdd"], data_dir, manual_dir)
  first = [v.numpy().copy() for v in t.model.variables]
  for v in t.model.variables:
    v.assign(v + 1.0)
  t.manager.save(checkpoint_number=200)
  path = averaging.average_checkpoints(t, 2, str(tmp_path / "avg"))
  fresh = _load(runs["fsdd"], data_dir, manual_dir)
  fresh.restore(path)
  for a, b in zip(first, fresh.model.variables):
    np.testing.assert_allclose(a + 0.5, b.numpy(), rtol=1e-5, atol=1e-5)

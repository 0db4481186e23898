"""Warm start and freezing through `onemodel-train` on real data: a mixture gaining a
problem loads what it shares with a trained run and starts the rest fresh (one table
says which); a frozen backbone ends bitwise as it was loaded while its adapters train;
a warm-started run killed and re-run resumes from its own checkpoint exactly; a
mismatch is one line."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import BIN, ROOT, cli, one_line_error, train_args

STEPS = 20


def _args(out, data_dir, manual_dir, problem="'mnist'", steps=STEPS, extra=()):
  params = [f"TrainConfig.problem={problem}", f"TrainConfig.train_steps={steps}",
            "TrainConfig.batch_size=16", "TrainConfig.log_every_steps=10",
            "TrainConfig.steps_per_loop=5", "TrainConfig.checkpoint_every_steps=10",
            "TrainConfig.final_eval_role=''", "TrainConfig.deterministic=True",
            "TrainConfig.report_mfu=False", "TrainConfig.shuffle_buffer=256", *extra]
  return train_args(out, data_dir, manual_dir, params)


JOINT = ["joint/Mixture.name='mnist_fsdd'", "joint/Mixture.problems=['mnist', 'fsdd']"]


def _weights(path):
  if os.path.isdir(path):
    path = tf.train.latest_checkpoint(os.path.join(path, "checkpoints"))
  return {n: tf.train.load_variable(path, n) for n, _ in tf.train.list_variables(path)
          if n.startswith("weights/") and "seed_generator" not in n}


def _part(weights, fragment):
  out = {k: v for k, v in weights.items() if fragment in k}
  assert out, fragment
  return out


@pytest.fixture(scope="module")
def source(tmp_path_factory, data_dir, manual_dir):
  """A trained mnist run: the weights every warm start here begins from."""
  out = str(tmp_path_factory.mktemp("source"))
  rc, _, se = cli("onemodel-train", *_args(out, data_dir, manual_dir))
  assert rc == 0, se[-3000:]
  return out


def test_a_mixture_gaining_a_problem_loads_what_it_shares(source, tmp_path, data_dir,
                                                          manual_dir):
  out = str(tmp_path / "joint")
  rc, so, se = cli("onemodel-train", *_args(
      out, data_dir, manual_dir, "@joint/Mixture()", 10,
      JOINT + [f"TrainConfig.init_from='{source}'",
               "TrainConfig.init_scope='backbone_and_adapters'",
               "TrainConfig.trainable='adapters'"]))
  assert rc == 0, se[-3000:]
  rows = {line.split()[0]: line for line in so.splitlines() if line.startswith("  ")}
  assert "loaded" in rows["backbone"] and "loaded" in rows["mnist_image_input"], so
  assert "loaded" in rows["embedding_mnist_label"], so
  assert "new" in rows["fsdd_speech_input"] and "new" in rows["embedding_fsdd_text"], so
  assert "loaded 1 of 2 rows" in rows["task_embedding"], so
  assert "trainable (TrainConfig.trainable='adapters')" in so, so
  record = json.load(open(os.path.join(out, "warm_start.json")))
  assert record["checkpoint"].endswith(f"ckpt-{STEPS}") and record["scope"] == \
      "backbone_and_adapters"
  before, after = _weights(source), _weights(out)
  # The frozen backbone is bitwise what was loaded; the shared adapter trained on.
  for k, v in _part(before, "one_model.Sencoder_0").items():
    np.testing.assert_array_equal(after[k], v, err_msg=k)
  changed = [k for k, v in _part(before, "mnist_image_input").items()
             if not np.array_equal(after[k], v)]
  assert changed
  assert _part(after, "fsdd_speech_input")  # the new adapter is in the checkpoint


def test_adapters_and_norms_trains_the_backbone_norms_only(source, tmp_path, data_dir,
                                                          manual_dir):
  out = str(tmp_path / "norms")
  rc, so, se = cli("onemodel-train", *_args(
      out, data_dir, manual_dir, steps=10,
      extra=[f"TrainConfig.init_from='{source}'",
             "TrainConfig.trainable='adapters_and_norms'"]))
  assert rc == 0, se[-3000:]
  before, after = _weights(source), _weights(out)
  backbone = {k: v for k, v in before.items() if ".Sencoder_" in k or ".Sdecoder_" in k}
  norms = [k for k in backbone if "_norm." in k]
  assert norms and len(norms) < len(backbone)
  for k, v in backbone.items():
    if k in norms:
      continue
    np.testing.assert_array_equal(after[k], v, err_msg=k)
  assert any(not np.array_equal(after[k], backbone[k]) for k in norms)


def test_a_killed_warm_started_run_resumes_from_its_own_checkpoint(
    source, tmp_path, data_dir, manual_dir):
  extra = [f"TrainConfig.init_from='{source}'", "BackboneConfig.dropout_rate=0.1"]
  whole = str(tmp_path / "whole")
  rc, so, se = cli("onemodel-train", *_args(whole, data_dir, manual_dir, steps=40,
                                            extra=extra))
  assert rc == 0, se[-3000:]
  assert "warm start from" in so
  out = str(tmp_path / "killed")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.Popen(
      [os.path.join(BIN, "onemodel-train"),
       *_args(out, data_dir, manual_dir, steps=40, extra=extra)],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 240
  while time.time() < deadline:
    line = proc.stdout.readline()
    if not line or "step 20/" in line:
      break
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")), "killed too early"
  rc, so, se = cli("onemodel-train", *_args(out, data_dir, manual_dir, steps=40,
                                            extra=extra))
  assert rc == 0, se[-3000:]
  a, b = _weights(whole), _weights(out)
  assert sorted(a) == sorted(b)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  assert "resumed from" in so and "warm start from" not in so, so


def test_a_shape_mismatch_is_one_line(source, tmp_path, data_dir, manual_dir):
  rc, _, se = cli("onemodel-train", *_args(
      str(tmp_path / "wider"), data_dir, manual_dir, steps=2,
      extra=[f"TrainConfig.init_from='{source}'", "BackboneConfig.model_dim=48"]))
  one_line_error(rc, se, "warm start from", "has shape", "48")


def test_scope_all_refuses_a_model_with_new_parts(source, tmp_path, data_dir, manual_dir):
  rc, _, se = cli("onemodel-train", *_args(
      str(tmp_path / "all"), data_dir, manual_dir, "@joint/Mixture()", 2,
      JOINT + [f"TrainConfig.init_from='{source}'"]))
  one_line_error(rc, se, "init_scope='all'", "fsdd_speech_input")


def test_no_checkpoint_or_a_bad_scope_is_one_line(tmp_path, data_dir, manual_dir):
  empty = tmp_path / "empty"
  empty.mkdir()
  rc, _, se = cli("onemodel-train", *_args(
      str(tmp_path / "a"), data_dir, manual_dir, steps=2,
      extra=[f"TrainConfig.init_from='{empty}'"]))
  one_line_error(rc, se, "TrainConfig.init_from", "no checkpoint there")
  rc, _, se = cli("onemodel-train", *_args(
      str(tmp_path / "b"), data_dir, manual_dir, steps=2,
      extra=["TrainConfig.init_scope='encoder'"]))
  one_line_error(rc, se, "TrainConfig.init_scope", "backbone_and_adapters")


def test_a_run_read_with_another_vocabulary_is_one_line(tmp_path, data_dir, manual_dir):
  # Its embedding rows mean its own vocabulary's pieces: resumed or evaluated with another
  # (a --data_dir whose vocabulary is sst2's here), every id would silently mean another.
  out = str(tmp_path / "run")
  rc, _, se = cli("onemodel-train", *_args(out, data_dir, manual_dir, "'multi30k_en_de'",
                                           steps=2, extra=["TrainConfig.batch_tokens=256"]))
  assert rc == 0, se[-3000:]
  other = tmp_path / "other"
  (other / "vocab" / "multi30k_en_de").mkdir(parents=True)
  os.symlink(os.path.join(data_dir, "onemodel_multi30k_en_de"),
             other / "onemodel_multi30k_en_de")
  with open(os.path.join(data_dir, "vocab", "sst2", "spm8000.model"), "rb") as f:
    (other / "vocab" / "multi30k_en_de" / "spm8000.model").write_bytes(f.read())
  flags = [f"--output_dir={out}", "--gin_param=TrainConfig.eval_max_examples=8"]
  rc, _, se = cli("onemodel-eval", *flags, f"--data_dir={other}")
  one_line_error(rc, se, f"run {out} was trained with another vocabulary for "
                 "embedding_multi30k_en_de_text", "--data_dir")
  rc, _, se = cli("onemodel-train", *_args(out, str(other), manual_dir, "'multi30k_en_de'",
                                           steps=4, extra=["TrainConfig.batch_tokens=256"]))
  one_line_error(rc, se, "another vocabulary for embedding_multi30k_en_de_text")
  rc, so, se = cli("onemodel-eval", *flags, f"--data_dir={data_dir}")  # its own: reads
  assert rc == 0, se[-3000:]

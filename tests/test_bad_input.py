"""A user mistake gets one clear line naming the thing, and a non-zero exit."""

import os

import pytest

from conftest import ROOT, cli, one_line_error, tiny_gin


def test_unknown_problem(tmp_path, data_dir, manual_dir):
  rc, so, se = cli("onemodel-train", *tiny_gin("mnsit", 2), f"--output_dir={tmp_path}",
                   f"--data_dir={data_dir}", f"--manual_dir={manual_dir}")
  one_line_error(rc, se, "unknown problem 'mnsit'", "mnist")


def test_gin_typo_rejected_at_parse(tmp_path):
  rc, so, se = cli("onemodel-train", "--gin_file=gin/models/tiny.gin",
                   "--gin_param=TrainConfig.trian_steps=3", f"--output_dir={tmp_path}")
  one_line_error(rc, se, "trian_steps")


def test_gin_unknown_configurable_in_file(tmp_path):
  bad = tmp_path / "bad.gin"
  bad.write_text("BackbonConfig.model_dim = 8\n")
  rc, so, se = cli("onemodel-train", f"--gin_file={bad}", f"--output_dir={tmp_path}")
  one_line_error(rc, se, "BackbonConfig")


def test_missing_gin_file(tmp_path):
  rc, so, se = cli("onemodel-train", "--gin_file=gin/models/nope.gin",
                   f"--output_dir={tmp_path}")
  one_line_error(rc, se, "gin/models/nope.gin")


def test_shipped_gin_files_resolve_from_any_directory(tmp_path, data_dir, manual_dir):
  """`--gin_file=gin/models/tiny.gin` (the README's form) and `models/tiny.gin` (an
  `include` line's form) name the shipped files from outside the repository too; a file
  that is nowhere says every place it looked."""
  for form in ("gin/models/tiny.gin", "models/tiny.gin"):
    rc, so, se = cli("onemodel-train", f"--gin_file={form}", *tiny_gin("mnist", 2)[1:],
                     "--gin_param=TrainConfig.final_eval_role=''",
                     f"--output_dir={tmp_path / form.replace('/', '_')}",
                     f"--data_dir={data_dir}", f"--manual_dir={manual_dir}", cwd=tmp_path)
    assert rc == 0, se
  rc, so, se = cli("onemodel-train", "--gin_file=gin/models/nope.gin",
                   f"--output_dir={tmp_path / 'x'}", cwd=tmp_path)
  line = one_line_error(rc, se, str(tmp_path / "gin/models/nope.gin"),  # as given
                        os.path.join(ROOT, "gin/models/nope.gin"),      # the repository's
                        os.path.join(ROOT, "gin/gin/models/nope.gin"))  # under its gin/


def test_missing_data_directory(tmp_path):
  missing = tmp_path / "no_such_data"
  rc, so, se = cli("onemodel-prepare", "--problem=fsdd", f"--manual_dir={missing}",
                   f"--data_dir={tmp_path / 'prepared'}")
  one_line_error(rc, se, str(missing / "fsdd" / "recordings"))


def test_missing_checkpoint(tmp_path, data_dir, manual_dir):
  out = tmp_path / "run"
  out.mkdir()
  (out / "config.gin").write_text("TrainConfig.problem = 'mnist'\n"
                                  "include 'models/tiny.gin'\n")
  rc, so, se = cli("onemodel-eval", f"--output_dir={out}", f"--data_dir={data_dir}",
                   f"--manual_dir={manual_dir}")
  one_line_error(rc, se, "no checkpoint", str(out))
  rc, so, se = cli("onemodel-eval", f"--output_dir={tmp_path / 'nope'}")
  one_line_error(rc, se, "nope")


def test_output_dir_not_writable(tmp_path, data_dir, manual_dir):
  blocker = tmp_path / "file"
  blocker.write_text("a file, not a directory")
  rc, so, se = cli("onemodel-train", *tiny_gin("mnist", 2),
                   f"--output_dir={blocker / 'run'}", f"--data_dir={data_dir}",
                   f"--manual_dir={manual_dir}")
  one_line_error(rc, se, str(blocker / "run"), f"{blocker} is a file, not a directory")


def test_unknown_problem_in_prepare(tmp_path):
  rc, so, se = cli("onemodel-prepare", "--problem=multi30k", f"--data_dir={tmp_path}")
  one_line_error(rc, se, "unknown problem 'multi30k'", "multi30k_en_de")


def test_expected_retracing_warnings_are_hidden(caplog):
  """The CLI hides TensorFlow's retracing warning (each evaluator traces its own
  functions); other TensorFlow warnings still show."""
  import logging
  import tensorflow as tf
  from onemodel.cli import common

  def trace_often():
    for n in range(1, 8):  # a new shape each call: retraced every time
      tf.function(lambda x: x + 1)(tf.zeros([n]))

  tf_logger = logging.getLogger("tensorflow")
  with caplog.at_level(logging.WARNING, logger="tensorflow"):
    trace_often()
  real = [r for r in caplog.records if "tf.function retracing" in r.getMessage()]
  assert real  # TensorFlow's own warning, as it words it
  saved = list(tf_logger.filters)
  try:
    common.hide_expected_warnings()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
      tf_logger.warning(real[0].msg, *real[0].args)  # the same warning again
      tf_logger.warning("another warning")
    assert [r.getMessage() for r in caplog.records] == ["another warning"]
  finally:
    tf_logger.filters[:] = saved


def test_tensorflow_start_notices_are_filtered(capfd, monkeypatch):
  """TensorFlow's native start-up notices (written to descriptor 2 whatever
  TF_CPP_MIN_LOG_LEVEL says) are dropped; every other line passes, in order; a failed
  cuInit is dropped only on a machine without an NVIDIA driver."""
  from onemodel.cli import native_stderr
  notices = [
      "WARNING: All log messages before absl::InitializeLog() is called are written to "
      "STDERR\n",
      "I0000 00:00:1796067204.152910   15701 port.cc:153] oneDNN custom operations are on. "
      "You may see slightly different numerical results due to floating-point round-off "
      "errors from different computation orders.\n",
      "I0000 00:00:1796067204.153336   15701 cudart_stub.cc:31] Could not find cuda drivers "
      "on your machine, GPU will not be used.\n"]
  cuinit = ("E0000 00:00:1796067206.390818   15701 cuda_platform.cc:52] failed call to "
            "cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n")
  for has_driver in (False, True):
    monkeypatch.setattr(native_stderr, "nvidia_driver", lambda: has_driver)
    capfd.readouterr()
    with native_stderr.filtered():
      for line in [notices[0], "a real problem\n", *notices[1:], cuinit, "and another\n"]:
        os.write(2, line.encode())
    err = capfd.readouterr().err
    assert err == "a real problem\n" + (cuinit if has_driver else "") + "and another\n"


def test_command_start_is_quiet():
  """A command's stderr holds what it says, not TensorFlow's start-up notices (on this
  kind of machine, without an NVIDIA driver, they include an ERROR-level cuInit line)."""
  rc, _, se = cli("onemodel-train", "--gin_file=no_such_file.gin")
  assert rc != 0
  lines = se.splitlines()
  assert len(lines) == 1 and lines[0].startswith(
      "onemodel-train: error: gin file no_such_file.gin does not exist"), se[-2000:]

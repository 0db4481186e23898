"""What a newcomer meets in the first hour, through the command lines: each mistake is one
line naming the thing with a non-zero exit and no traceback, nothing half-written or
left behind, and no screens of TensorFlow noise after the line."""

import json
import os

import pytest

from conftest import cli, one_line_error, tiny_gin


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir, manual_dir):
  """A 2-step translation run (text in, text out) and a 4-step mnist run."""
  root = tmp_path_factory.mktemp("newcomer")
  out = {}
  for problem, steps in (("multi30k_en_de", 2), ("mnist", 4)):
    d = str(root / problem)
    rc, so, se = cli("onemodel-train", *tiny_gin(problem, steps, [
        "TrainConfig.final_eval_role=''"]), f"--output_dir={d}",
        f"--data_dir={data_dir}", f"--manual_dir={manual_dir}")
    assert rc == 0, se[-2000:]
    out[problem] = d
  return out


def _run_flags(run, data_dir, manual_dir):
  return [f"--output_dir={run}", f"--data_dir={data_dir}", f"--manual_dir={manual_dir}"]


def _fresh_mnist_run(tmp_path, steps, data_dir, manual_dir):
  """A tiny mnist run of this test's own -> (its directory, its directory flags)."""
  out = tmp_path / "run"
  flags = _run_flags(out, data_dir, manual_dir)
  rc, so, se = cli("onemodel-train", *tiny_gin("mnist", steps, [
      "TrainConfig.final_eval_role=''"]), *flags)
  assert rc == 0, se[-2000:]
  return out, flags


def test_decode_bad_files_are_one_line_and_write_nothing(runs, data_dir, manual_dir,
                                                        tmp_path):
  flags = _run_flags(runs["multi30k_en_de"], data_dir, manual_dir)
  empty, binary, good = tmp_path / "empty.en", tmp_path / "image.en", tmp_path / "in.en"
  empty.write_text("")
  binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
  good.write_text("A dog runs.\nTwo men talk.\n")
  rc, so, se = cli("onemodel-decode", *flags, f"--decode_from_file={empty}")
  one_line_error(rc, se, str(empty), "is empty")
  rc, so, se = cli("onemodel-decode", *flags, f"--decode_from_file={binary}")
  one_line_error(rc, se, str(binary), "not UTF-8")
  a_file = tmp_path / "a_file"
  a_file.write_text("mine")
  rc, so, se = cli("onemodel-decode", *flags, f"--decode_from_file={good}",
                   f"--decode_to_file={a_file / 'out.de'}")
  one_line_error(rc, se, "--decode_to_file", str(a_file), "is a file, not a directory")
  assert a_file.read_text() == "mine"
  refs, out = tmp_path / "refs.de", tmp_path / "out.de"
  refs.write_text("Ein Hund rennt.\n")  # one line for two inputs
  rc, so, se = cli("onemodel-decode", *flags, f"--decode_from_file={good}",
                   f"--decode_to_file={out}", f"--decode_refs={refs}")
  one_line_error(rc, se, str(refs), "1 lines for 2 inputs")
  assert not out.exists()  # checked before anything was decoded or written
  refs.write_text("Ein Hund rennt.\nZwei Männer reden.\n")
  rc, so, se = cli("onemodel-decode", *flags, f"--decode_from_file={good}",
                   f"--decode_to_file={out}", f"--decode_refs={refs}")
  assert rc == 0, se[-2000:]
  assert len(out.read_text().splitlines()) == 2


def test_decode_from_dir_names_each_file(runs, data_dir, manual_dir, tmp_path):
  import numpy as np
  import tensorflow as tf
  with np.load(os.path.join(manual_dir, "mnist", "mnist.npz")) as d:
    images = d["x_test"][:2]
  clips = tmp_path / "digits"
  clips.mkdir()
  for name, img in zip(("b.png", "a.png"), images):
    (clips / name).write_bytes(tf.io.encode_png(img[..., None]).numpy())
  rc, so, se = cli("onemodel-decode", *_run_flags(runs["mnist"], data_dir, manual_dir),
                   f"--decode_from_dir={clips}")
  assert rc == 0, se[-2000:]
  lines = so.strip("\n").split("\n")
  assert [l.split("\t")[0] for l in lines] == ["a.png", "b.png"], lines
  # (a 4-step model may emit no class: the export's empty output)
  assert all(l.split("\t")[1] in [str(k) for k in range(10)] + [""] for l in lines), lines


def test_directory_flags_through_a_file(runs, data_dir, manual_dir, tmp_path):
  a_file = tmp_path / "a_file"
  a_file.write_text("mine")
  rc, so, se = cli("onemodel-export", *_run_flags(runs["mnist"], data_dir, manual_dir),
                   f"--export_dir={a_file / 'export'}")
  one_line_error(rc, se, "--export_dir", str(a_file), "is a file, not a directory")
  rc, so, se = cli("onemodel-prepare", "--problem=mnist", f"--data_dir={a_file}",
                   f"--manual_dir={manual_dir}")
  one_line_error(rc, se, "--data_dir", str(a_file), "is a file, not a directory")
  assert a_file.read_text() == "mine"


@pytest.mark.parametrize("binding,needle", [
    ("BackboneConfig.num_heads='two'", "BackboneConfig.num_heads='two': must be an integer"),
    ("BackboneConfig.dropout_rate='high'", "BackboneConfig.dropout_rate='high': must be a"),
    ("ImageConfig.stem_batch_norm=1", "ImageConfig.stem_batch_norm=1: must be True or"),
    ("SpeechConfig.num_mels=40.5", "SpeechConfig.num_mels=40.5: must be an integer"),
    ("TextConfig.token_dropout=1.5", "TextConfig.token_dropout=1.5: allowed range"),
    ("DecodeConfig.method='bogus'", "DecodeConfig.method='bogus': use 'greedy'"),
    ("DecodeConfig.beam_size=0", "DecodeConfig.beam_size=0: must be >= 1"),
    ("DecodeConfig.alpha=-0.5", "DecodeConfig.alpha=-0.5: must be >= 0"),
    ("optimizer.weight_decay='none'", "optimizer.weight_decay='none': must be a number"),
    ("learning_rate_schedule.warmup_steps=1.5", "warmup_steps=1.5: must be an integer"),
    ("PruningConfig.frequency='often'", "PruningConfig.frequency='often': must be an"),
])
def test_every_configurable_value_is_checked(binding, needle, tmp_path, data_dir,
                                             manual_dir):
  rc, so, se = cli("onemodel-train", *tiny_gin("mnist", 2), f"--gin_param={binding}",
                   f"--output_dir={tmp_path / 'run'}", f"--data_dir={data_dir}",
                   f"--manual_dir={manual_dir}")
  one_line_error(rc, se, needle)
  assert "In call to configurable" not in se


def test_bad_decode_method_at_eval_is_one_line(runs, data_dir, manual_dir):
  rc, so, se = cli("onemodel-eval", *_run_flags(runs["mnist"], data_dir, manual_dir),
                   "--gin_param=DecodeConfig.method='bogus'")
  one_line_error(rc, se, "DecodeConfig.method='bogus'")


def test_a_huge_binding_value_is_not_echoed_whole(tmp_path):
  value = "x" * 100_000
  rc, so, se = cli("onemodel-train", "--gin_file=gin/models/tiny.gin",
                   f"--gin_param=TrainConfig.problem='{value}'",
                   f"--output_dir={tmp_path / 'run'}")
  line = one_line_error(rc, se, "unknown problem", "characters]")
  assert len(line) < 1000


def test_incompatible_rerun_is_one_line_with_the_reason_first(tmp_path, data_dir,
                                                             manual_dir):
  out, dirs = _fresh_mnist_run(tmp_path, 2, data_dir, manual_dir)
  before = sorted(os.listdir(out / "checkpoints"))
  rc, so, se = cli("onemodel-train", *tiny_gin("fsdd", 4, [
      "TrainConfig.final_eval_role=''", "TrainConfig.log_every_steps=4"]), *dirs)
  line = one_line_error(rc, se, "does not fit")
  reasons = line[line.index("(") + 1:]
  assert reasons.startswith("TrainConfig.problem: 'mnist' -> 'fsdd'"), line
  assert "train_steps" not in line and "log_every_steps" not in line
  assert len(se.strip().splitlines()) <= 3, se  # not pages of TensorFlow warnings
  assert sorted(os.listdir(out / "checkpoints")) == before


def test_prepare_leaves_nothing_behind(tmp_path, manual_dir):
  """A prepare leaves no `tmp*tfds` directories in $TMPDIR and does not say it downloaded
  anything; a failed one leaves no empty directories in --data_dir."""
  tmp = tmp_path / "tmp"
  tmp.mkdir()
  env_tmp = {"TMPDIR": str(tmp)}
  data = tmp_path / "prepared"
  rc, so, se = _cli_env(env_tmp, "onemodel-prepare", "--problem=fsdd",
                        f"--data_dir={data}", f"--manual_dir={manual_dir}")
  assert rc == 0, se[-2000:]
  assert os.listdir(tmp) == []
  assert "Downloading and preparing" not in so and "downloaded and prepared" not in so, so
  assert "prepared fsdd in" in so
  fresh = tmp_path / "fresh"
  rc, so, se = _cli_env(env_tmp, "onemodel-prepare", "--problem=fsdd",
                        f"--data_dir={fresh}", f"--manual_dir={tmp_path / 'no_data'}")
  one_line_error(rc, se, "raw data not found")
  left = [d for d, _, _ in os.walk(fresh)] if fresh.exists() else []
  assert all(os.listdir(d) for d in left), left
  assert os.listdir(tmp) == []


def _cli_env(env, tool, *args):
  import subprocess
  from conftest import BIN, ROOT
  proc = subprocess.run([os.path.join(BIN, tool), *args], capture_output=True, text=True,
                        timeout=300, cwd=ROOT,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **env))
  return proc.returncode, proc.stdout, proc.stderr


def test_predict_without_flags_says_what_to_give():
  rc, so, se = cli("onemodel-predict")
  one_line_error(rc, se, "give --saved_model=DIR")


def test_eval_checkpoint_flag_names_what_is_wrong(runs, data_dir, manual_dir):
  flags = _run_flags(runs["mnist"], data_dir, manual_dir)
  index = os.path.join(runs["mnist"], "checkpoints", "ckpt-4.index")
  rc, so, se = cli("onemodel-eval", *flags, f"--checkpoint={index}")
  one_line_error(rc, se, index, "is not a checkpoint: give its prefix")
  rc, so, se = cli("onemodel-eval", *flags, f"--checkpoint={index[:-6]}0")
  one_line_error(rc, se, "ckpt-40 does not exist")


def test_eval_falls_back_from_a_garbage_index_like_training(tmp_path, data_dir,
                                                            manual_dir):
  out, flags = _fresh_mnist_run(tmp_path, 4, data_dir, manual_dir)
  (out / "checkpoints" / "ckpt-4.index").write_bytes(b"garbage, not an sstable")
  rc, so, se = cli("onemodel-eval", *flags, "--split=eval")
  assert rc == 0, se[-2000:]
  assert "ckpt-4 cannot be read" in so + se and "falling back to" in so + se
  assert "Traceback" not in se and "deprecat" not in se.lower(), se
  # Evaluation only reads the run (a trainer may still be writing it): nothing moved.
  assert (out / "checkpoints" / "ckpt-4.index").exists()
  assert not (out / "checkpoints" / "corrupt").exists()
  assert json.load(open(out / "metrics_eval_step2.json"))["step"] == 2


def test_planner_reads_right_for_a_run(runs):
  """`onemodel-plan` on a run directory: no TensorFlow deprecation notice, the link the
  chips really use, "unknown" where the run measured no noise scale, and no advice to
  switch to async on an assumed staleness cost."""
  rc, so, se = cli("onemodel-plan", f"--workload={runs['mnist']}", "--hardware=v100",
                   "--chips=8")
  assert rc == 0, se[-2000:]
  assert "deprecat" not in se.lower(), se
  lines = so.splitlines()
  assert "on 8 x v100 (one node, nvlink2)" in lines[0], lines[0]
  weak = next(l for l in lines if l.strip().startswith("weak scaling"))
  assert "unknown: the run measured no noise scale" in weak, weak
  assert "stops paying" not in weak
  sync = next(l for l in lines if l.strip().startswith("sync vs async"))
  if "sync:" not in sync:  # async wins on paper: said as an assumption, not as advice
    assert "before switching" in sync and "async:" not in sync, sync
  assert "-way tensor" not in so
  rc, so, se = cli("onemodel-plan", f"--workload={runs['mnist']}", "--hardware=v100",
                   "--chips=16", "--format=json")
  out = json.loads(so)
  assert "throughput_per_sec" in out and "examples_per_sec" not in out
  assert out["limits"]["weak_scaling"]["chips"] is None


def test_a_tf_config_task_outside_its_cluster_is_one_line(monkeypatch):
  from onemodel import distribute
  from onemodel.errors import UserError
  cluster = {"worker": ["localhost:1", "localhost:2"]}
  for task, needle in (({"type": "worker", "index": 2}, "task index 2 is out of range"),
                       ({"type": "chief", "index": 0}, "task type 'chief' is not in"),
                       ({"type": "worker", "index": -1}, "indices 0..1")):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    with pytest.raises(UserError, match=needle):
      distribute.tf_config()
  monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                              "task": {"type": "worker", "index": 1}}))
  assert distribute.tf_config()["task"]["index"] == 1


def test_a_skip_always_says_why():
  from onemodel import rawdata
  from onemodel.sources import values
  skipped = rawdata.SkipCounter("t")
  skipped.skip("5_theo_20.wav", "")
  assert skipped.reasons == ["5_theo_20.wav: unreadable"]
  import tempfile
  with tempfile.NamedTemporaryFile(suffix=".wav") as f:
    f.write(b"RIFF")  # a header cut short: wave raises EOFError() with no message
    f.flush()
    with pytest.raises(values.BadValue, match=r"not a readable WAV \(\w+"):
      values.wav(f.name, 8000)


def test_a_full_disk_at_a_checkpoint_is_one_line_and_keeps_the_earlier_ones(tmp_path,
                                                                            monkeypatch):
  """A checkpoint write that fails (here: the disk fills up in the middle of it) leaves
  no half-written `ckpt-N_temp` and the earlier checkpoints, and says so in one line."""
  import errno
  import tensorflow as tf
  from onemodel import checkpoints
  from onemodel.errors import UserError
  v = tf.Variable(1.0)
  keeper = checkpoints.Keeper(tf.train.Checkpoint(v=v), str(tmp_path / "ckpt"), 3)
  keeper.save(1)

  def disk_full(checkpoint_number):
    os.makedirs(tmp_path / "ckpt" / f"ckpt-{checkpoint_number}_temp")
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(keeper.manager, "save", disk_full)
  with pytest.raises(UserError, match=r"step 2 could not be written .*No space left on "
                                      r"device.*earlier checkpoints are kept"):
    keeper.save(2)
  assert sorted(os.listdir(tmp_path / "ckpt")) == [
      "checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index"]


def test_an_unwritable_checkpoint_directory_is_found_before_training(tmp_path, data_dir,
                                                                     manual_dir):
  """(A read-only directory cannot be made here: the tests may run as root. A file in
  the place of checkpoints/ cannot be written into either.)"""
  out = tmp_path / "run"
  out.mkdir()
  (out / "checkpoints").write_text("in the way")
  rc, so, se = cli("onemodel-train", *tiny_gin("mnist", 2), f"--output_dir={out}",
                   f"--data_dir={data_dir}", f"--manual_dir={manual_dir}")
  one_line_error(rc, se, "is not writable")
  assert "step 1" not in so and "step 2" not in so  # no training work was lost

"""The run directory and its checkpoints: unique variable paths per problem, a re-run
that does not fit leaves the run untouched, one trainer per run, a corrupt latest
checkpoint falls back, every TrainConfig value is checked, and distributed input reads
every training example exactly once per epoch."""

import collections
import dataclasses
import hashlib
import os
import re
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from conftest import cli, one_line_error, tiny_gin
from onemodel import checkpoints
from onemodel import data as data_lib
from onemodel import mixtures
from onemodel import train_config
from onemodel import trainer as trainer_lib
from onemodel.errors import UserError


def _dirs(out, data_dir, manual_dir):
  return [f"--output_dir={out}", f"--data_dir={data_dir}", f"--manual_dir={manual_dir}"]


def test_two_image_problems_keep_both_adapters(tmp_path, problems, data_dir, manual_dir,
                                               isolated_registry):
  from onemodel import registry
  registry.register_problem(dataclasses.replace(problems["mnist"], name="mnist_twin"))
  mix = mixtures.Mixture(name="two_images", problems=("mnist", "mnist_twin"))
  cfg = trainer_lib.TrainConfig(problem=mix, train_steps=4, batch_size=8, steps_per_loop=2,
                                log_every_steps=2, checkpoint_every_steps=2,
                                final_eval_role="", report_mfu=False, eval_max_examples=32,
                                eval_batch_size=32)
  import gin
  gin.parse_config_files_and_bindings(["gin/models/tiny.gin"], [])
  t = trainer_lib.Trainer(str(tmp_path), data_dir, manual_dir, cfg=cfg)
  t.train()
  before = t.evaluate("test", 4)
  names = [n for n, _ in tf.train.list_variables(t.manager.latest_checkpoint)
           if n.startswith("weights/")]
  per_problem = {p: [n for n in names if re.search(rf"(weights/|\.S){p}_image_input\.S", n)]
                 for p in ("mnist", "mnist_twin")}
  assert per_problem["mnist"] and len(per_problem["mnist"]) == len(per_problem["mnist_twin"])
  assert len(names) == len({id(v) for v in t.model.variables})  # one entry per variable
  # A fresh model restored for evaluation (no optimizer: the adapters must come from
  # weights/, not from the optimizer's copy) evaluates exactly as the trained one.
  fresh = trainer_lib.Trainer(str(tmp_path), data_dir, manual_dir, cfg=cfg, training=False)
  fresh.restore()
  after = fresh.evaluate("test", 4)

  def strip(r):
    return {p: {k: v for k, v in m.items() if k != "seconds"} for p, m in r.items()}

  assert strip(after) == strip(before)


def test_a_second_trainer_in_one_process_restores_a_dropout_run(tmp_path, data_dir,
                                                                manual_dir):
  """Dropout's RNG states are saved under the model's attribute paths: Keras names them
  from a process-wide counter (`seed_generator_N`), so a trainer built after another one
  in the same process once could not restore its own run (IncompatibleRun)."""
  import gin
  gin.parse_config_files_and_bindings(["gin/models/tiny.gin"],
                                      ["BackboneConfig.dropout_rate = 0.1"])
  cfg = trainer_lib.TrainConfig(problem="mnist", train_steps=2, batch_size=4,
                                steps_per_loop=2, log_every_steps=2, final_eval_role="",
                                report_mfu=False)
  for run in ("a", "b"):
    trainer_lib.Trainer(str(tmp_path / run), data_dir, manual_dir, cfg=cfg).train()
  latest = tf.train.latest_checkpoint(str(tmp_path / "b" / "checkpoints"))
  names = [n for n, _ in tf.train.list_variables(latest) if "seed_generator_state" in n]
  assert names and not any("seed_generator_" in n.replace("seed_generator_state", "")
                           for n in names), names
  again = trainer_lib.Trainer(str(tmp_path / "b"), data_dir, manual_dir, cfg=cfg)
  again.restore()  # for training: every object must match
  fresh = trainer_lib.Trainer(str(tmp_path / "b"), data_dir, manual_dir, cfg=cfg,
                              training=False)
  fresh.restore()
  reader = tf.train.load_checkpoint(latest)
  for t in (again, fresh):
    for path, v in t.checkpoint.weights.items():
      key = "weights/" + path.replace("/", ".S") + "/.ATTRIBUTES/VARIABLE_VALUE"
      np.testing.assert_array_equal(v.numpy(), reader.get_tensor(key))


@pytest.mark.parametrize("outage", [2, 9])
def test_a_storage_outage_is_retried_and_never_quarantines(tmp_path, monkeypatch, outage):
  """NotFound/Unknown/OSError are what GCS or NFS raise for a passing outage: the
  restore retries, and if the outage outlasts the retries it fails in one line, the
  checkpoint in place (it once was moved to corrupt/ and training restarted older)."""
  v = tf.Variable(1.0)
  keeper = checkpoints.Keeper(tf.train.Checkpoint(v=v), str(tmp_path), 3)
  keeper.save(1)
  v.assign(2.0)
  latest = keeper.save(2)
  v.assign(0.0)
  monkeypatch.setattr(checkpoints, "RETRY_WAITS_S", (0.0, 0.0, 0.0))
  restore, calls = checkpoints.Keeper._restore, []  # pylint: disable=protected-access

  def flaky(checkpoint, path, complete):
    calls.append(path)
    if len(calls) <= outage:
      raise [tf.errors.NotFoundError(None, None, "gcs: object not found"),
             tf.errors.UnknownError(None, None, "connection reset"),
             OSError("stale NFS file handle")][len(calls) % 3]
    return restore(checkpoint, path, complete)

  monkeypatch.setattr(checkpoints.Keeper, "_restore", staticmethod(flaky))
  before = sorted(os.listdir(tmp_path))
  if outage < 4:
    assert keeper.restore() == latest and float(v.numpy()) == 2.0
  else:
    with pytest.raises(UserError, match=r"ckpt-2 could not be read .* in 4 attempts; "
                       r"it is left in place") as e:
      keeper.restore()
    assert "\n" not in str(e.value)
  assert set(calls) == {latest}
  assert sorted(os.listdir(tmp_path)) == before  # nothing moved, index not rewritten


def test_evaluation_restores_a_checkpoint_with_counter_named_rng_states(tmp_path, data_dir,
                                                                        manual_dir):
  """Checkpoints written before the RNG states had stable paths hold them under Keras'
  counter names (`seed_generator_N/...`): evaluation, which draws no dropout, leaves
  them out and still restores every weight."""
  import gin
  gin.parse_config_files_and_bindings(["gin/models/tiny.gin"],
                                      ["BackboneConfig.dropout_rate = 0.1"])
  cfg = trainer_lib.TrainConfig(problem="mnist", report_mfu=False)
  old = trainer_lib.Trainer(str(tmp_path / "old"), data_dir, manual_dir, cfg=cfg,
                            training=False)
  layout = {v.path: v for v in old.model.variables}  # the layout before
  assert any("seed_generator" in k for k in layout)
  for v in old.model.trainable_variables:
    v.assign(v + 1.0)
  path = tf.train.Checkpoint(weights=layout, step=old.step,
                             problem_steps=old.problem_steps).save(str(tmp_path / "ckpt"))
  fresh = trainer_lib.Trainer(str(tmp_path / "new"), data_dir, manual_dir, cfg=cfg,
                              training=False)
  assert fresh.restore(path) == path
  for a, b in zip(old.model.trainable_variables, fresh.model.trainable_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_duplicate_variable_paths_fail_at_build():
  import keras
  a = keras.Variable(1.0, name="a")
  b = keras.Variable(2.0, name="a")
  assert a.path == b.path
  with pytest.raises(ValueError, match="share the checkpoint path"):
    checkpoints.variables_by_path([a, b])


def test_incompatible_rerun_is_one_line_and_leaves_the_run(tmp_path, data_dir, manual_dir):
  out = str(tmp_path / "run")
  rc, so, se = cli("onemodel-train", *tiny_gin("mnist", 2), *_dirs(out, data_dir, manual_dir))
  assert rc == 0, se[-2000:]
  config = open(os.path.join(out, "config.gin")).read()
  ckpts = sorted(os.listdir(os.path.join(out, "checkpoints")))
  rc, so, se = cli("onemodel-train", *tiny_gin("mnist", 4, ["BackboneConfig.model_dim=64"]),
                   *_dirs(out, data_dir, manual_dir))
  one_line_error(rc, se, "does not fit", "model_dim")
  assert open(os.path.join(out, "config.gin")).read() == config
  assert sorted(os.listdir(os.path.join(out, "checkpoints"))) == ckpts
  rc, so, se = cli("onemodel-eval", *_dirs(out, data_dir, manual_dir))  # still usable
  assert rc == 0, se[-2000:]


def test_second_trainer_refused_stale_lock_taken_over(tmp_path, data_dir, manual_dir):
  import json
  import socket
  out = tmp_path / "run"
  out.mkdir()
  lock = out / ".lock"
  lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                              "since": "now"}))
  rc, so, se = cli("onemodel-train", *tiny_gin("mnist", 2),
                   *_dirs(str(out), data_dir, manual_dir))
  one_line_error(rc, se, "in use by another trainer", str(os.getpid()))
  assert not (out / "checkpoints").exists()
  dead = subprocess.Popen(["true"])
  dead.wait()
  lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
  rc, so, se = cli("onemodel-train", *tiny_gin("mnist", 2),
                   *_dirs(str(out), data_dir, manual_dir))
  assert rc == 0, se[-2000:]
  assert "stale lock" in so
  assert not lock.exists()  # released at the end


def test_a_lock_whose_pid_was_reused_is_stale(tmp_path, capsys):
  """A restarted container runs as the same pid (PID 1) on the same hostname: the pid
  is alive, but it is not the process that took the lock (its start differs)."""
  import json
  import socket
  from onemodel import rundir
  me = {"pid": os.getpid(), "host": socket.gethostname(), "since": "then"}
  lock = tmp_path / ".lock"
  lock.write_text(json.dumps({**me, "started": "another-boot:12345"}))
  run = rundir.RunDir(str(tmp_path))
  run.lock()
  assert "its pid now belongs to another process" in capsys.readouterr().out
  assert json.loads(lock.read_text())["started"] == rundir._identity(os.getpid())  # pylint: disable=protected-access
  run.unlock()
  lock.write_text(json.dumps({**me, "started": rundir._identity(os.getpid())}))  # pylint: disable=protected-access
  with pytest.raises(UserError, match="in use by another trainer"):
    rundir.RunDir(str(tmp_path)).lock()


def test_corrupt_latest_checkpoint_falls_back(tmp_path, data_dir, manual_dir):
  out = str(tmp_path / "run")
  rc, so, se = cli("onemodel-train", *tiny_gin("mnist", 4), *_dirs(out, data_dir, manual_dir))
  assert rc == 0, se[-2000:]
  ckpt = os.path.join(out, "checkpoints")
  data_file = os.path.join(ckpt, "ckpt-4.data-00000-of-00001")
  with open(data_file, "r+b") as f:
    f.truncate(os.path.getsize(data_file) // 2)
  os.makedirs(os.path.join(ckpt, "ckpt-6_temp"))  # a kill in the middle of a save
  rc, so, se = cli("onemodel-train", *tiny_gin("mnist", 6), *_dirs(out, data_dir, manual_dir))
  assert rc == 0, se[-2000:]
  assert "ckpt-4 cannot be read" in so and "falling back to" in so and "ckpt-2" in so
  assert "resumed from" in so and "at step 2" in so
  assert os.path.exists(os.path.join(ckpt, "corrupt", "ckpt-4.index"))  # kept, not lost
  assert not os.path.exists(os.path.join(ckpt, "ckpt-6_temp"))
  assert os.path.exists(os.path.join(ckpt, "ckpt-6.index"))


BAD = [("train_steps", 0), ("train_steps", -5), ("batch_size", 0), ("batch_size", "8"),
       ("steps_per_loop", 0), ("log_every_steps", 0), ("checkpoint_every_steps", 0),
       ("keep_checkpoints", 0), ("eval_every_steps", -1), ("grad_accum_steps", 0),
       ("label_smoothing", 1.5), ("seed", -1), ("deterministic", "yes"),
       ("shuffle_buffer", 0), ("per_problem", {"mnist": {"batch_size": -1}}),
       ("per_problem", {"mnist": {"dropout": 0.1}}), ("bucket_boundaries", ()),
       ("input_sharding", "files")]


@pytest.mark.parametrize("name,value", BAD)
def test_every_trainconfig_value_is_checked(name, value):
  cfg = train_config.TrainConfig(problem="mnist", **{name: value})
  with pytest.raises(UserError, match=rf"TrainConfig\.{name}") as e:
    train_config.validate(cfg)
  assert "\n" not in str(e.value)


@pytest.mark.parametrize("over", [dict(pack=True), dict(grad_accum_steps=2)])
def test_a_per_problem_token_budget_obeys_the_combination_rules(over):
  cfg = train_config.TrainConfig(problem="multi30k_en_de", **over,
                                 per_problem={"multi30k_en_de": {"batch_tokens": 512}})
  with pytest.raises(UserError, match=r"per_problem\['multi30k_en_de'\]\['batch_tokens'\]"):
    train_config.validate(cfg)


def test_settings_that_need_the_problems_fail_before_anything_runs(problems):
  mnist = [problems["mnist"]]
  check = train_config.check_against_problems
  with pytest.raises(UserError, match=r"final_eval_role='validation': problem mnist has "
                     r"no such split \(its roles: eval, test, train\)"):
    check(train_config.TrainConfig(final_eval_role="validation"), mnist)
  with pytest.raises(UserError, match=r"TrainConfig.eval_role='dev'"):
    check(train_config.TrainConfig(eval_role="dev", eval_every_steps=10), mnist)
  check(train_config.TrainConfig(eval_role="dev", eval_every_steps=0), mnist)  # unused
  with pytest.raises(UserError, match=r"TrainConfig.batch_size=5: .* over the 2 replicas"):
    check(train_config.TrainConfig(batch_size=5), mnist, num_replicas=2)
  with pytest.raises(UserError, match=r"per_problem\['mnist'\]\['batch_size'\]=9"):
    check(train_config.TrainConfig(per_problem={"mnist": {"batch_size": 9}}), mnist, 2)
  check(train_config.TrainConfig(batch_size=6), mnist, num_replicas=2)


def test_a_wrong_final_role_stops_the_cli_before_training(tmp_path, data_dir, manual_dir):
  out = str(tmp_path / "run")
  rc, so, se = cli("onemodel-train", *tiny_gin("mnist", 2, [
      "TrainConfig.final_eval_role='validation'"]), *_dirs(out, data_dir, manual_dir),
                   timeout=120)
  one_line_error(rc, se, "TrainConfig.final_eval_role='validation'", "problem mnist")
  assert not os.path.exists(os.path.join(out, "checkpoints")), os.listdir(out)


def test_zero_steps_per_loop_is_one_line_from_the_cli(tmp_path, data_dir, manual_dir):
  rc, so, se = cli("onemodel-train", *tiny_gin("mnist", 2, ["TrainConfig.steps_per_loop=0"]),
                   *_dirs(str(tmp_path / "run"), data_dir, manual_dir), timeout=120)
  one_line_error(rc, se, "TrainConfig.steps_per_loop=0", ">= 1")


@pytest.mark.parametrize("cache,shard_batches", [(False, False), (True, False),
                                                 (False, True)])
def test_two_input_pipelines_read_each_example_once_per_epoch(problems, data_dir, cache,
                                                              shard_batches):
  """With the default non-deterministic order: the two pipelines' shares of the first
  epoch (each its own range of the records, or blocks of the batch size of one shuffled
  stream) are disjoint and together are the whole training split."""
  p = problems["mnist"]

  def key(image):
    return hashlib.md5(np.ascontiguousarray(image).tobytes()).hexdigest()

  everything = collections.Counter(
      key(ex["image"]) for ex in data_lib.raw_split(p, "train", data_dir).as_numpy_iterator())
  total = sum(everything.values())
  seen = collections.Counter()
  for index in range(2):
    ds = data_lib.dataset(p, "train", data_dir, 100, training=True, seed=0, cache=cache,
                          deterministic=False, shard=(2, index),
                          shard_batches=shard_batches).unbatch()
    share = sum(1 for j in range(total) if (j // 100) % 2 == index) if shard_batches \
        else (total - index + 1) // 2
    for feats in ds.take(share).as_numpy_iterator():
      seen[key(feats["inputs"])] += 1
  assert seen == everything


def test_workers_read_disjoint_record_ranges(problems, data_dir):
  """Sharded at the source: each of 3 workers reads its own range of the records (a
  parameter-server worker's index is a tensor: same range), none reads another's."""
  p = problems["sst2"]

  def records(ds):
    return [(int(ex["targets"]), bytes(ex["inputs"])) for ex in ds.as_numpy_iterator()]

  whole = records(data_lib.raw_split(p, "train", data_dir))
  ranges = [records(data_lib.raw_split(p, "train", data_dir, share=(3, k))) for k in range(3)]
  assert [len(r) for r in ranges] == [len(whole) // 3 + (k < len(whole) % 3)
                                      for k in range(3)]
  assert sum(ranges, []) == whole  # in file order: contiguous, disjoint ranges
  assert records(data_lib.raw_split(p, "train", data_dir,
                                    share=(3, tf.constant(2)))) == ranges[2]


def test_a_worker_opens_only_its_own_files(problems, manual_dir, tmp_path):
  """Prepared in 4 files per split (`onemodel-prepare --num_shards=4`), worker 1 of 2
  reads its records from files 2-3 alone: files 0-1 overwritten with garbage do not
  disturb it, while worker 0, who needs them, fails on them."""
  p = problems["sst2"]
  d = str(tmp_path / "prepared")
  data_lib.prepare(p, d, manual_dir, num_shards=4)
  files = sorted(tf.io.gfile.glob(f"{data_lib.builder(p, d).data_dir}/*-train.tfrecord*"))
  assert len(files) == 4
  expected = list(data_lib.raw_split(p, "train", d, share=(2, 1)).as_numpy_iterator())
  for f in files[:2]:
    with open(f, "wb") as out:
      out.write(b"not a record" * 1000)
  got = list(data_lib.raw_split(p, "train", d, share=(2, 1)).as_numpy_iterator())
  assert len(got) == len(expected) == 67349 // 2
  assert all(a["inputs"] == b["inputs"] for a, b in zip(got, expected))
  with pytest.raises(tf.errors.DataLossError):
    list(data_lib.raw_split(p, "train", d, share=(2, 0)).as_numpy_iterator())


def test_a_run_directory_on_a_non_local_filesystem(data_dir, manual_dir):
  """Everything a run writes goes through tf.io.gfile: TensorFlow's own in-memory
  `ram://` filesystem stands in for GCS here."""
  import gin
  gin.parse_config_files_and_bindings(["gin/models/tiny.gin"], [])
  out = "ram://onemodel_test_run"
  cfg = trainer_lib.TrainConfig(problem="mnist", train_steps=4, batch_size=8,
                                steps_per_loop=2, log_every_steps=2,
                                checkpoint_every_steps=2, report_mfu=False,
                                eval_max_examples=16, eval_batch_size=16)
  t = trainer_lib.Trainer(out, data_dir, manual_dir, cfg=cfg)
  t.train(config_text=gin.config_str())
  for name in ("config.gin", "metrics_test_step4.json", "checkpoints/ckpt-4.index"):
    assert tf.io.gfile.exists(f"{out}/{name}"), name
  assert not tf.io.gfile.exists(f"{out}/.lock")
  fresh = trainer_lib.Trainer(out, data_dir, manual_dir, cfg=cfg, training=False)
  assert fresh.restore().endswith("ckpt-4")


def test_a_disk_without_room_for_a_checkpoint_stops_before_training(tmp_path, data_dir,
                                                                    manual_dir, monkeypatch):
  """A full disk once showed only at the first save, after the training work."""
  import shutil
  from onemodel import rundir
  cfg = trainer_lib.TrainConfig(problem="mnist", train_steps=2, batch_size=4,
                                final_eval_role="", report_mfu=False)
  import gin
  gin.parse_config_files_and_bindings(["gin/models/tiny.gin"], [])
  t = trainer_lib.Trainer(str(tmp_path / "run"), data_dir, manual_dir, cfg=cfg)
  need = t.keeper.estimated_bytes()
  weights = sum(v.numpy().nbytes for v in t.model.trainable_variables)
  assert 3 * weights <= need < 4 * weights  # the weights and Adam's two slots
  usage = shutil.disk_usage(str(tmp_path))
  monkeypatch.setattr(rundir.shutil, "disk_usage",
                      lambda path: usage._replace(free=need // 2))
  with pytest.raises(UserError, match=r"checkpoints has [\d.]+ MB free; a checkpoint of "
                     r"this run takes about [\d.]+ MB: make room") as e:
    t.train()
  assert "\n" not in str(e.value)
  assert not (tmp_path / "run" / "checkpoints").exists()
  monkeypatch.setattr(rundir.shutil, "disk_usage", lambda path: usage._replace(free=need))
  assert t.train()["step"] == 2


def test_workers_probe_the_output_dir_without_racing(tmp_path, monkeypatch):
  """All workers of a cluster check the output dir at once. Each probes a file of its
  own, a non-chief inside its scratch dir, where the chief's cleanup of temp files never
  looks. Before, all probed one OUTPUT_DIR/.write_probe: 4 of 6 two-worker starts failed
  with 'not writable' as one worker removed the other's probe."""
  from onemodel import fileio
  from onemodel import rundir
  written, write = [], fileio.atomic_write_text
  monkeypatch.setattr(fileio, "atomic_write_text",
                      lambda path, text: (written.append(path), write(path, text))[1])
  out = str(tmp_path / "run")
  ckpts = os.path.join(out, "checkpoints")
  rundir.RunDir(out, is_chief=True).check_writable(ckpts)
  scratch = os.path.join(out, ".worker_scratch", "worker_1")
  rundir.RunDir(out, is_chief=False).check_writable(scratch)
  assert [os.path.dirname(p) for p in written] == [out, ckpts, scratch]
  assert all(os.path.basename(p).endswith(f"-{os.getpid()}") for p in written)
  # Nothing is left before the run's lock is taken: directories a probe made are gone.
  assert os.listdir(out) == [".worker_scratch"]
  assert not os.path.exists(ckpts) and not os.path.exists(scratch)

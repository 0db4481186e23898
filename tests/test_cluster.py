"""tf.distribute on this machine: mirrored on 2 logical CPUs, a 2-process multi-worker
cluster, a parameter-server cluster, and a worker killed mid-run. Every multi-process
test has a timeout and stops the process group it started."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import BIN, ROOT

TINY = ["TrainConfig.problem='mnist'", "TrainConfig.batch_size=8",
        "TrainConfig.steps_per_loop=2", "TrainConfig.log_every_steps=2",
        "TrainConfig.checkpoint_every_steps=2", "TrainConfig.eval_max_examples=32",
        "TrainConfig.eval_batch_size=32", "TrainConfig.deterministic=True",
        # SGD with a large constant step and tight clipping: replicas must agree to float
        # precision (Adam's normalization would amplify round-off in tiny gradients), and
        # clipping must use the global gradient's norm.
        "optimizer.name='sgd'", "optimizer.clipnorm=0.1",
        "learning_rate_schedule.learning_rate=0.5", "learning_rate_schedule.warmup_steps=1",
        "learning_rate_schedule.decay='constant'"]


def _train_args(out, data_dir, manual_dir, steps, extra=()):
  return (["--gin_file=gin/models/tiny.gin"] +
          [f"--gin_param={p}" for p in TINY + [f"TrainConfig.train_steps={steps}", *extra]] +
          [f"--output_dir={out}", f"--data_dir={data_dir}", f"--manual_dir={manual_dir}"])


def _start(cmd):
  return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          cwd=ROOT, start_new_session=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


def _finish(proc, timeout):
  try:
    out, _ = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate()
    pytest.fail(f"timed out after {timeout} s:\n{out[-3000:]}")
  return proc.returncode, out


def _kill_worker_1_when(proc, ready, timeout=240, signum=signal.SIGKILL):
  """Streams the launcher's output until `ready(line)`, then sends `signum` to worker 1's
  process group. Returns (lines read, signalled pid or None)."""
  lines, victim, deadline = [], None, time.time() + timeout
  for line in proc.stdout:
    lines.append(line)
    m = re.search(r"started worker 1 \(pid (\d+)\)", line)
    if m and victim is None:
      victim = int(m.group(1))
    if victim and ready(line):
      os.killpg(victim, signum)
      return lines, victim
    if time.time() > deadline:
      break
  return lines, None


def _failure(out):
  """Every error line of every process, then the log's tail: a launcher log's tail alone
  cut off the cause of a flaky CI failure once."""
  errors = "\n".join(l for l in out.splitlines()
                     if re.search(r"Error|error:|Traceback|exited", l))[-6000:]
  return errors + "\n...\n" + out[-2000:]


def _weights(ckpt_dir):
  path = tf.train.latest_checkpoint(ckpt_dir)
  reader = tf.train.load_checkpoint(path)
  names = sorted(n for n in reader.get_variable_to_shape_map()
                 if n.startswith("weights/") and "OPTIMIZER_SLOT" not in n)
  return path, {n: reader.get_tensor(n) for n in names}


def _assert_same(a, b, atol):
  assert a.keys() == b.keys() and a
  worst = max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
  assert worst < atol, worst


def _one_device_and_mirrored(tmp_path, data_dir, manual_dir, bindings, after=""):
  """Trains the same 4 steps on one device and on 2 mirrored replicas (two logical
  CPUs), each in a process of its own; `after` runs in each process after training ->
  (the two outputs, and the weights of one device before and after and of mirrored)."""
  script = textwrap.dedent(f"""
      import sys, gin, numpy as np, tensorflow as tf
      cpu = tf.config.list_physical_devices('CPU')[0]
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      from onemodel import registry, trainer
      from onemodel.cli import common
      registry.load_plugins()
      name = sys.argv[1]
      strategy = (tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1']) if name == 'mirrored'
                  else tf.distribute.OneDeviceStrategy('/cpu:0'))
      common.parse_gin(['gin/models/tiny.gin'], {TINY + ['TrainConfig.train_steps=4',
                                                        "TrainConfig.final_eval_role=''",
                                                        *bindings]!r})
      t = trainer.Trainer({str(tmp_path)!r} + '/' + name, {data_dir!r}, {manual_dir!r},
                          strategy=strategy)
      assert t.strategy.num_replicas_in_sync == (2 if name == 'mirrored' else 1)
      np.savez({str(tmp_path)!r} + '/init_' + name + '.npz',
               *[v.numpy() for v in t.model.variables])
      t.train()
      np.savez({str(tmp_path)!r} + '/' + name + '.npz',
               *[v.numpy() for v in t.model.variables])
  """) + textwrap.dedent(after)
  outs = []
  for name in ("one", "mirrored"):
    rc, out = _finish(_start([sys.executable, "-c", script, name]), 300)
    assert rc == 0, out[-3000:]
    outs.append(out)
  return outs, [np.load(tmp_path / f"{n}.npz") for n in ("init_one", "one", "mirrored")]


def _assert_equal_and_trained(init, one, mirrored):
  assert len(one.files) > 10
  worst = max(float(np.max(np.abs(one[k] - mirrored[k]))) for k in one.files)
  assert worst < 1e-5, worst
  moved = max(float(np.max(np.abs(one[k] - init[k]))) for k in one.files)
  assert moved > 1e-2, moved  # training really changed the weights


def test_mirrored_two_cpus_equals_one_device(tmp_path, data_dir, manual_dir):
  """Same global batch, same seed: one device and 2 mirrored replicas end equal."""
  # Distributed evaluation: the one-device checkpoint, evaluated under each strategy.
  outs, weights = _one_device_and_mirrored(tmp_path, data_dir, manual_dir, [], f"""
      ev = trainer.Trainer({str(tmp_path)!r} + '/' + name, {data_dir!r}, {manual_dir!r},
                           strategy=strategy, training=False)
      ev.restore({str(tmp_path)!r} + '/one/checkpoints/ckpt-4')
      m = ev.evaluate('test', 4)
      print('EVAL', m['accuracy'], m['loss_per_token'])
  """)
  evals = [[float(x) for x in re.search(r"EVAL (\S+) (\S+)", out).groups()]
           for out in outs]
  # Metrics of one checkpoint are the same under both strategies.
  assert evals[0][0] == evals[1][0]
  assert abs(evals[0][1] - evals[1][1]) < 1e-6
  _assert_equal_and_trained(*weights)


def test_mirrored_summed_mixture_equals_one_device(tmp_path, data_dir, manual_dir):
  """A summed mixture update (TrainConfig.mixture_update='summed': one batch of every
  problem, their losses weighted by rate) on 2 mirrored replicas ends equal to one device
  on the same global batches: each problem's loss is divided by its global token count."""
  _, weights = _one_device_and_mirrored(tmp_path, data_dir, manual_dir, [
      "joint/Mixture.name='mnist_fsdd'", "joint/Mixture.problems=['mnist', 'fsdd']",
      "joint/Mixture.rates={'mnist': 1.0, 'fsdd': 3.0}",
      "TrainConfig.problem=@joint/Mixture()", "TrainConfig.mixture_update='summed'"])
  _assert_equal_and_trained(*weights)


def test_distributed_eval_equals_one_device_eval(tmp_path, data_dir, manual_dir):
  """Evaluation on 2 mirrored replicas: each decodes half of every batch (the last batch,
  5 rows, padded to 6), and the loss, BLEU and every decoded row equal one device's on the
  same checkpoint."""
  run = str(tmp_path / "run")
  text = ["TrainConfig.problem='multi30k_en_de'", "TrainConfig.batch_size=8",
          "TrainConfig.train_steps=6", "TrainConfig.checkpoint_every_steps=6",
          "TrainConfig.eval_max_examples=37", "TrainConfig.eval_batch_size=16",
          "TrainConfig.final_eval_role=''"]
  script = textwrap.dedent(f"""
      import json, sys, tensorflow as tf
      cpu = tf.config.list_physical_devices('CPU')[0]
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      from onemodel import decoding, registry, trainer
      from onemodel.cli import common
      registry.load_plugins()
      common.parse_gin(['gin/models/tiny.gin'], {text!r})
      name = sys.argv[1]
      one = tf.distribute.OneDeviceStrategy('/cpu:0')
      if name == 'train':
        trainer.Trainer({run!r}, {data_dir!r}, {manual_dir!r}, strategy=one).train()
        sys.exit(0)
      rows, strip = [], decoding.strip_eos
      decoding.strip_eos = lambda ids: rows.append([int(i) for i in ids]) or strip(ids)
      strategy = (tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1']) if name == 'mirrored'
                  else one)
      ev = trainer.Trainer({run!r}, {data_dir!r}, {manual_dir!r}, strategy=strategy,
                           training=False)
      ev.restore()
      metrics = ev.evaluate('eval', 6)
      print('EVAL', json.dumps(metrics))
      print('ROWS', json.dumps(rows))
      print('PER_REPLICA', json.dumps(next(iter(ev.evaluators.values())).rows_per_replica))
  """)
  out = {}
  for name in ("train", "one", "mirrored"):
    rc, log = _finish(_start([sys.executable, "-c", script, name]), 300)
    assert rc == 0, log[-3000:]
    out[name] = {k: json.loads(v) for k, v in re.findall(r"^([A-Z_]+) (.*)$", log, re.M)}
  one, mirrored = out["one"], out["mirrored"]
  assert one["PER_REPLICA"] == [37] and mirrored["PER_REPLICA"] == [19, 18], mirrored
  assert len(one["ROWS"]) == 37 and mirrored["ROWS"] == one["ROWS"]
  assert len({tuple(r) for r in one["ROWS"]}) > 5  # the outputs differ between sentences
  assert mirrored["EVAL"]["bleu"] == one["EVAL"]["bleu"]
  assert mirrored["EVAL"]["num_examples"] == one["EVAL"]["num_examples"] == 37
  assert abs(mirrored["EVAL"]["loss_per_token"] - one["EVAL"]["loss_per_token"]) < 1e-5


def test_multi_worker_identical_and_matches_single_device(tmp_path, data_dir, manual_dir):
  mw, single = tmp_path / "mw", tmp_path / "single"
  # 'batches': both workers read the one shuffled stream, each keeps its own batches,
  # so a 2-worker step trains on exactly one device's 2x batch.
  rc, out = _finish(_start([os.path.join(BIN, "onemodel-launch"), "--num_workers=2", "--",
                            *_train_args(mw, data_dir, manual_dir, 4,
                                         ["TrainConfig.input_sharding='batches'"])]), 300)
  assert rc == 0, out[-3000:]
  assert "[worker 0] step 4/4" in out and "[worker 1] step 4/4" in out
  chief_path, chief = _weights(str(mw / "checkpoints"))
  other_path, other = _weights(str(mw / ".worker_scratch" / "worker_1"))
  assert chief_path.endswith("ckpt-4") and other_path.endswith("ckpt-4")
  _assert_same(chief, other, 1e-6)
  rc, out = _finish(_start([os.path.join(BIN, "onemodel-train"),
                            *_train_args(single, data_dir, manual_dir, 4)]), 300)
  assert rc == 0, out[-3000:]
  _assert_same(chief, _weights(str(single / "checkpoints"))[1], 1e-4)


def test_sigterm_to_a_worker_saves_everywhere_and_resumes_exactly(tmp_path, data_dir,
                                                                  manual_dir):
  """A preemption under multi-worker training (the workers agree in an all-reduce):
  SIGTERM to worker 1 mid-run makes every worker save at one agreed step and the launcher
  exit 143 with no traceback; the same command again resumes at that step, losing none,
  and ends with the weights of an uninterrupted 2-worker run."""
  launch = os.path.join(BIN, "onemodel-launch")
  # No periodic checkpoint before the end: the only one mid-run is the preemption's.
  args = lambda out: [launch, "--num_workers=2", "--", *_train_args(
      out, data_dir, manual_dir, 100, ["TrainConfig.checkpoint_every_steps=1000"])]
  rc, out = _finish(_start(args(tmp_path / "whole")), 300)
  assert rc == 0, _failure(out)
  proc = _start(args(tmp_path / "mw"))
  lines, victim = _kill_worker_1_when(
      proc, lambda line: re.search(r"\[worker 0\] step \d+/100", line),
      signum=signal.SIGTERM)
  rc, rest = _finish(proc, 300)
  out = "".join(lines) + rest
  assert victim is not None and rc == 143, _failure(out)
  assert "Traceback" not in out and "deprecated" not in out, _failure(out)
  saved = re.findall(r"\[worker (\d)\] onemodel-train: error: preempted \(SIGTERM\) at "
                     r"step (\d+); checkpoint saved", out)
  assert sorted(w for w, _ in saved) == ["0", "1"], _failure(out)
  step = int(saved[0][1])
  assert saved[1][1] == saved[0][1] and 0 < step < 100, saved
  logged = max(int(n) for n in re.findall(r"\[worker 0\] step (\d+)/100", out))
  assert logged <= step  # saved at the step reached, not at an earlier one
  assert tf.train.latest_checkpoint(str(tmp_path / "mw" / "checkpoints")).endswith(
      f"ckpt-{step}")
  assert "preempted; the checkpoint of the step reached is saved" in out
  rc, out = _finish(_start(args(tmp_path / "mw")), 300)
  assert rc == 0, _failure(out)
  assert re.search(rf"\[worker 0\] resumed from \S+ckpt-{step} at step {step}\b", out), \
      _failure(out)
  whole = _weights(str(tmp_path / "whole" / "checkpoints"))[1]
  resumed = _weights(str(tmp_path / "mw" / "checkpoints"))[1]
  assert whole.keys() == resumed.keys() and whole
  for name in whole:  # bitwise: measured so (TrainConfig.deterministic=True)
    np.testing.assert_array_equal(whole[name], resumed[name], err_msg=name)


def test_sigterm_to_the_launcher_saves_and_exits_143(tmp_path, data_dir, manual_dir):
  """A scheduler preempting the launcher itself: it passes SIGTERM on, every worker saves
  at one step, and the launcher exits 143 (a preemption), not 130 (Ctrl-C)."""
  proc = _start([os.path.join(BIN, "onemodel-launch"), "--num_workers=2", "--",
                 *_train_args(tmp_path / "mw", data_dir, manual_dir, 100,
                              ["TrainConfig.checkpoint_every_steps=1000"])])
  lines, deadline = [], time.time() + 240
  for line in proc.stdout:
    lines.append(line)
    if re.search(r"\[worker 0\] step \d+/100", line) or time.time() > deadline:
      break
  os.kill(proc.pid, signal.SIGTERM)
  rc, rest = _finish(proc, 120)
  out = "".join(lines) + rest
  assert rc == 143, _failure(out)
  assert "terminated (SIGTERM); every task was asked to save" in out, _failure(out)
  saved = re.findall(r"\[worker (\d)\] onemodel-train: error: preempted \(SIGTERM\) at "
                     r"step (\d+); checkpoint saved", out)
  assert sorted(w for w, _ in saved) == ["0", "1"] and saved[0][1] == saved[1][1], \
      _failure(out)


def test_workers_resume_the_newest_step_all_of_them_saved(tmp_path, data_dir, manual_dir):
  """A kill between the chief's save and worker 1's leaves the chief one checkpoint
  ahead: both resume from the newest step both saved (the chief's newer one set aside,
  not deleted) and end bitwise equal to an uninterrupted 2-worker run."""
  launch = os.path.join(BIN, "onemodel-launch")
  args = lambda out, steps: [launch, "--num_workers=2", "--", *_train_args(
      out, data_dir, manual_dir, steps)]
  rc, out = _finish(_start(args(tmp_path / "whole", 6)), 300)
  assert rc == 0, _failure(out)
  mw = tmp_path / "mw"
  rc, out = _finish(_start(args(mw, 4)), 300)
  assert rc == 0, _failure(out)
  # Worker 1 "was killed" before its save at step 4.
  scratch = str(mw / ".worker_scratch" / "worker_1")
  for f in tf.io.gfile.glob(os.path.join(scratch, "ckpt-4.*")):
    tf.io.gfile.remove(f)
  tf.compat.v1.train.update_checkpoint_state(
      scratch, os.path.join(scratch, "ckpt-2"),
      all_model_checkpoint_paths=[os.path.join(scratch, "ckpt-2")],
      all_model_checkpoint_timestamps=[time.time()])
  rc, out = _finish(_start(args(mw, 6)), 300)
  assert rc == 0, _failure(out)
  assert re.search(r"\[worker 0\] resumed from \S+ckpt-2 at step 2\b", out), _failure(out)
  assert re.search(r"\[worker 1\] resumed from \S+ckpt-2 at step 2\b", out), _failure(out)
  assert "saved by this worker only; moved to" in out
  assert (mw / "checkpoints" / "unagreed" / "ckpt-4.index").exists()
  whole = _weights(str(tmp_path / "whole" / "checkpoints"))[1]
  for ckpt_dir in (mw / "checkpoints", mw / ".worker_scratch" / "worker_1"):
    path, resumed = _weights(str(ckpt_dir))
    assert path.endswith("ckpt-6") and whole.keys() == resumed.keys() and whole
    for name in whole:
      np.testing.assert_array_equal(whole[name], resumed[name], err_msg=name)


def test_parameter_server_cluster_trains(tmp_path, data_dir, manual_dir):
  out_dir = tmp_path / "ps"
  rc, out = _finish(_start([os.path.join(BIN, "onemodel-launch"), "--num_workers=2",
                            "--num_ps=1", "--",
                            *_train_args(out_dir, data_dir, manual_dir, 40,
                                         ["TrainConfig.log_every_steps=10",
                                          "TrainConfig.steps_per_loop=5",
                                          "TrainConfig.checkpoint_every_steps=20"])]), 300)
  assert rc == 0, out[-3000:]
  losses = [float(x) for x in re.findall(r"\[chief 0\] step \d+/40 \| loss (\S+)", out)]
  assert len(losses) == 4 and losses[-1] < losses[0], out[-3000:]
  assert "staleness" in out
  assert tf.train.latest_checkpoint(str(out_dir / "checkpoints")).endswith("ckpt-40")


def test_parameter_server_sigterm_saves_loses_no_step_and_resumes(tmp_path, data_dir,
                                                                   manual_dir):
  """Preempting a parameter-server cluster: the coordinator acts on SIGTERM within a few
  rounds of functions (not at the next log boundary, step 200), saves before the launcher
  stops the servers it reads, the launcher exits 143, and the same command resumes at the
  saved step and finishes. The signal comes half a second after the step-100 log line, once
  that boundary's own check has passed."""
  out_dir = tmp_path / "ps"
  cmd = [os.path.join(BIN, "onemodel-launch"), "--num_workers=2", "--num_ps=1", "--",
         *_train_args(out_dir, data_dir, manual_dir, 400,
                      ["TrainConfig.log_every_steps=100", "TrainConfig.steps_per_loop=2",
                       "TrainConfig.checkpoint_every_steps=1000"])]
  proc = _start(cmd)
  lines, deadline = [], time.time() + 240
  for line in proc.stdout:
    lines.append(line)
    if re.search(r"\[chief 0\] step 100/400", line) or time.time() > deadline:
      break
  time.sleep(0.5)
  os.kill(proc.pid, signal.SIGTERM)
  rc, rest = _finish(proc, 120)
  out = "".join(lines) + rest
  assert rc == 143, _failure(out)
  saved = re.findall(r"\[chief 0\] onemodel-train: error: (?:preempted \(SIGTERM\)|stopped "
                     r"by SIGTERM) at step (\d+)", out)
  assert len(saved) == 1 and 100 < int(saved[0]) < 200, _failure(out)
  step = int(saved[0])
  assert tf.train.latest_checkpoint(str(out_dir / "checkpoints")).endswith(f"ckpt-{step}")
  rc, out = _finish(_start(cmd), 300)
  assert rc == 0, _failure(out)
  assert re.search(rf"resumed from .* at step {step}\b", out), _failure(out)
  assert tf.train.latest_checkpoint(str(out_dir / "checkpoints")).endswith("ckpt-400")


def test_killed_worker_restarts_and_resumes(tmp_path, data_dir, manual_dir):
  out_dir = tmp_path / "mw"
  # Two restarts allowed: the kill is the first failure; a second one (seen once in a
  # session-1 CI run, cause not found since) must still end in a resumed, finished run.
  proc = _start([os.path.join(BIN, "onemodel-launch"), "--num_workers=2",
                 "--max_restarts=2", "--",
                 *_train_args(out_dir, data_dir, manual_dir, 60,
                              ["TrainConfig.checkpoint_every_steps=4"])])
  # Kill worker 1 once the chief has written a checkpoint.
  lines, victim = _kill_worker_1_when(
      proc, lambda line: tf.train.latest_checkpoint(str(out_dir / "checkpoints")))
  rc, rest = _finish(proc, 300)
  out = "".join(lines) + rest
  assert victim is not None, out[-3000:]
  assert rc == 0, _failure(out)
  assert "restarting the cluster" in out
  resumed = re.search(r"\[worker 0\] resumed from \S+ckpt-(\d+) at step (\d+)", out)
  assert resumed and int(resumed.group(1)) >= 4, out[-3000:]
  assert "[worker 0] step 60/60" in out


def test_parameter_server_tolerates_a_lost_worker(tmp_path, data_dir, manual_dir):
  out_dir = tmp_path / "ps"
  proc = _start([os.path.join(BIN, "onemodel-launch"), "--num_workers=2", "--num_ps=1",
                 "--max_restarts=1", "--",
                 *_train_args(out_dir, data_dir, manual_dir, 300,
                              ["TrainConfig.log_every_steps=20",
                               "TrainConfig.steps_per_loop=5",
                               "TrainConfig.checkpoint_every_steps=100"])])
  # Kill worker 1 once training is under way.
  lines, victim = _kill_worker_1_when(
      proc, lambda line: re.search(r"\[chief 0\] step 40/", line))
  assert victim is not None
  rc, rest = _finish(proc, 300)
  out = "".join(lines) + rest
  assert rc == 0, out[-3000:]
  assert "worker 1 exited" in out and "restarting it" in out
  assert "[chief 0] step 300/300" in out
  assert tf.train.latest_checkpoint(str(out_dir / "checkpoints")).endswith("ckpt-300")


def test_wait_for_chief_polls_then_names_what_is_missing(monkeypatch):
  """A non-chief worker polls until the chief's files exist; past its timeout it stops
  with one line naming what is missing (not a hang)."""
  from onemodel import distribute
  from onemodel.errors import UserError
  monkeypatch.setattr(distribute.time, "sleep", lambda s: None)
  polls = iter([False, False, True])
  distribute.wait_for_chief(lambda: next(polls), "x", timeout_s=60)
  assert next(polls, "used up") == "used up"  # it polled until ready, then stopped
  with pytest.raises(UserError, match="^problem p was not prepared in /d by the chief; "
                     "run onemodel-prepare first$"):
    distribute.wait_for_chief(lambda: False, "problem p was not prepared in /d",
                              timeout_s=0)

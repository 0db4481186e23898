"""Trust in the training core, end to end through `onemodel-train` on real MNIST:
a run killed (kill -9) or stopped (SIGTERM) and re-run with the same command ends with
the weights of an uninterrupted run; a diverging run stops non-zero and keeps its good
checkpoints; checkpoints and log lines land on exact multiples of their intervals."""

import os
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import BIN, ROOT, cli, one_line_error

STEPS = 40


def _args(out, data_dir, manual_dir, steps=STEPS, extra=()):
  params = ["TrainConfig.problem='mnist'", f"TrainConfig.train_steps={steps}",
            "TrainConfig.batch_size=16", "TrainConfig.log_every_steps=10",
            "TrainConfig.steps_per_loop=5", "TrainConfig.checkpoint_every_steps=10",
            "TrainConfig.final_eval_role=''", "TrainConfig.deterministic=True",
            "TrainConfig.report_mfu=False", "TrainConfig.shuffle_buffer=256",
            "ImageConfig.random_shift=2",  # augmentation must resume exactly too
            *extra]
  return (["--gin_file=gin/models/tiny.gin", f"--output_dir={out}",
           f"--data_dir={data_dir}", f"--manual_dir={manual_dir}"]
          + [f"--gin_param={p}" for p in params])


def _weights(run_dir, step=STEPS):
  path = os.path.join(run_dir, "checkpoints", f"ckpt-{step}")
  names = [n for n, _ in tf.train.list_variables(path) if n.startswith("weights/")]
  assert names
  return {n: tf.train.load_variable(path, n) for n in names}


def _max_diff(a, b):
  assert sorted(a) == sorted(b)
  return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir, manual_dir):
  """One uninterrupted run, the reference every interrupted run must reproduce."""
  out = str(tmp_path_factory.mktemp("uninterrupted"))
  rc, so, se = cli("onemodel-train", *_args(out, data_dir, manual_dir))
  assert rc == 0, se[-3000:]
  return _weights(out)


def _start(out, data_dir, manual_dir):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.Popen([os.path.join(BIN, "onemodel-train"),
                           *_args(out, data_dir, manual_dir)], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(proc, needle, timeout=240):
  """Reads the trainer's stdout until a line contains `needle` -> the lines so far."""
  lines, deadline = [], time.time() + timeout
  while time.time() < deadline:
    line = proc.stdout.readline()
    if not line:
      break
    lines.append(line)
    if needle in line:
      return lines
  proc.kill()
  raise AssertionError(f"never saw {needle!r}: {''.join(lines)[-2000:]}")


def test_kill9_then_rerun_equals_uninterrupted(reference, tmp_path, data_dir, manual_dir):
  out = str(tmp_path / "killed")
  proc = _start(out, data_dir, manual_dir)
  _wait_for(proc, "step 20/")   # after ckpt-20 at the latest: killed mid-run
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not os.path.exists(os.path.join(out, "checkpoints", f"ckpt-{STEPS}.index"))
  rc, so, se = cli("onemodel-train", *_args(out, data_dir, manual_dir))
  assert rc == 0, se[-3000:]
  assert "resumed from" in so, so
  assert _max_diff(_weights(out), reference) == 0.0


def test_sigterm_saves_and_rerun_loses_no_step(reference, tmp_path, data_dir, manual_dir):
  out = str(tmp_path / "preempted")
  proc = _start(out, data_dir, manual_dir)
  _wait_for(proc, "step 10/")
  proc.send_signal(signal.SIGTERM)
  so, se = proc.communicate(timeout=120)
  assert proc.returncode == 143, se[-3000:]
  assert "Traceback" not in se
  line = [l for l in se.splitlines() if "stopped by SIGTERM" in l]
  assert len(line) == 1, se[-2000:]
  stopped = int(line[0].split("at step ")[1].split(";")[0])
  assert 10 <= stopped < STEPS
  assert os.path.exists(os.path.join(out, "checkpoints", f"ckpt-{stopped}.index"))
  rc, so, se = cli("onemodel-train", *_args(out, data_dir, manual_dir))
  assert rc == 0, se[-3000:]
  assert f"at step {stopped}" in so  # resumed exactly where it stopped
  assert _max_diff(_weights(out), reference) == 0.0


def test_divergence_stops_nonzero_and_keeps_good_checkpoints(tmp_path, data_dir,
                                                             manual_dir):
  out = str(tmp_path / "nan")
  rc, so, se = cli("onemodel-train", *_args(out, data_dir, manual_dir, steps=40))
  assert rc == 0
  good = sorted(os.listdir(os.path.join(out, "checkpoints")))
  # Re-run with an absurd learning rate for more steps: it diverges and must stop.
  rc, so, se = cli("onemodel-train", *_args(out, data_dir, manual_dir, steps=200, extra=[
      "learning_rate_schedule.learning_rate=1e30"]))
  line = one_line_error(rc, se, "non-finite")
  assert "steps" in line
  kept = sorted(os.listdir(os.path.join(out, "checkpoints")))
  names = [n for n in kept if n.endswith(".index")]
  for n in names:  # whatever was written since is finite
    path = os.path.join(out, "checkpoints", n[:-len(".index")])
    for v, _ in tf.train.list_variables(path):
      if v.startswith("weights/"):
        assert np.all(np.isfinite(tf.train.load_variable(path, v))), (n, v)
  assert "ckpt-40.index" in names, (good, kept)


def test_cadence_is_exact_whatever_steps_per_loop(tmp_path, data_dir, manual_dir):
  out = str(tmp_path / "cadence")
  rc, so, se = cli("onemodel-train", *_args(out, data_dir, manual_dir, steps=100, extra=[
      "TrainConfig.steps_per_loop=10", "TrainConfig.checkpoint_every_steps=25",
      "TrainConfig.log_every_steps=15", "TrainConfig.keep_checkpoints=10",
      "TrainConfig.deterministic=False"]))
  assert rc == 0, se[-3000:]
  ckpts = sorted(int(n[len("ckpt-"):-len(".index")])
                 for n in os.listdir(os.path.join(out, "checkpoints")) if n.endswith(".index"))
  assert ckpts == [25, 50, 75, 100]
  logged = [int(l.split("/")[0].split()[-1]) for l in so.splitlines() if l.startswith("step ")]
  assert logged == [15, 30, 45, 60, 75, 90, 100]


def test_mirrored_resume_equals_uninterrupted(tmp_path, data_dir, manual_dir):
  """Two replicas (two logical CPUs): the input iterator is checkpointed, so a run
  stopped at step 4 (as SIGTERM stops it) and resumed by a new trainer reproduces an
  uninterrupted 8-step run. The image stem is batch-normalized: its moving averages
  (state outside the optimizer) are updated per replica and must resume too, and so must
  dropout, whose mask differs per replica (onemodel/dropout.py). The config
  asks for XLA, which has no CPU collectives: the trainer says so and runs without it."""
  import sys
  import textwrap
  script = textwrap.dedent(f"""
      import gin, tensorflow as tf
      cpu = tf.config.list_physical_devices('CPU')[0]
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      from onemodel import interrupts, registry, trainer
      from onemodel.cli import common
      registry.load_plugins()
      common.parse_gin(['gin/models/tiny.gin'], ['ImageConfig.random_shift=2',
                       "ImageConfig.stem='conv'", 'ImageConfig.patch_size=4',
                       'ImageConfig.stem_batch_norm=True',
                       'BackboneConfig.dropout_rate=0.1'])
      check = interrupts.Interrupts.check
      def run(out, stop_at=None):
        def stop(self, step):  # a SIGTERM that arrives during steps 3-4
          if stop_at and step >= stop_at:
            self.received = 'SIGTERM'
          return check(self, step)
        interrupts.Interrupts.check = stop
        cfg = trainer.TrainConfig(problem='mnist', train_steps=8, batch_size=16,
                                  steps_per_loop=2, log_every_steps=2,
                                  checkpoint_every_steps=8, final_eval_role='',
                                  report_mfu=False, deterministic=True, shuffle_buffer=256,
                                  jit_compile=True)
        s = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
        try:
          trainer.Trainer(out, {data_dir!r}, {manual_dir!r}, strategy=s, cfg=cfg).train()
        except interrupts.Interrupted as e:
          print('STOPPED', e)
      run({str(tmp_path / 'a')!r})
      run({str(tmp_path / 'b')!r}, stop_at=4)
      run({str(tmp_path / 'b')!r})
  """)
  proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                        text=True, timeout=400,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "STOPPED stopped by SIGTERM at step 4" in proc.stdout, proc.stdout
  assert "resumed from" in proc.stdout and "at step 4" in proc.stdout
  assert "fresh shuffle" not in proc.stdout
  assert proc.stdout.count("TrainConfig.jit_compile=True is ignored here") == 3
  a, b = _weights(str(tmp_path / "a"), 8), _weights(str(tmp_path / "b"), 8)
  assert any("stem_norm_0.Smoving_mean" in name for name in a)
  assert _max_diff(a, b) == 0

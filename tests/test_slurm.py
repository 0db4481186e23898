"""SLURM: a job step's environment becomes the cluster (TensorFlow's SlurmClusterResolver),
`onemodel-launch --slurm` prints the sbatch script, and two tasks with a simulated SLURM
environment train as a 2-worker cluster on this machine, are preempted and resume
exactly."""

import os
import re
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import BIN, ROOT, cli, one_line_error
from onemodel import distribute
from onemodel import slurm
from onemodel.errors import UserError

sys.path.insert(0, os.path.dirname(__file__))
from test_cluster import _assert_same, _finish, _train_args, _weights  # noqa: E402


def _step_env(procid, tasks, nodes, per_node, ports=""):
  env = {"SLURM_PROCID": str(procid), "SLURM_STEP_NUM_TASKS": str(tasks),
         "SLURM_STEP_NODELIST": nodes, "SLURM_STEP_TASKS_PER_NODE": per_node}
  if ports:
    env["SLURM_STEP_RESV_PORTS"] = ports
  return env


def test_a_job_step_is_a_cluster(monkeypatch):
  monkeypatch.setenv("TF_CONFIG", "")  # unset (the code below sets it; undone after)
  assert slurm.cluster_from_env() == {}  # not under srun
  for k, v in _step_env(2, 4, "node[01-02]", "2(x2)", "13000-13001").items():
    monkeypatch.setenv(k, v)
  assert slurm.cluster_from_env() == {
      "cluster": {"worker": ["node01:13000", "node01:13001", "node02:13000",
                             "node02:13001"]},
      "task": {"type": "worker", "index": 2}}
  # distribute reads it as it reads TF_CONFIG, and hands it to TensorFlow's resolvers.
  assert distribute.task() == ("worker", 2) and not distribute.is_chief()
  assert '"node02:13001"' in os.environ["TF_CONFIG"]
  monkeypatch.setenv("TF_CONFIG", "")
  monkeypatch.setenv("SLURM_PROCID", "0")
  monkeypatch.delenv("SLURM_STEP_RESV_PORTS")
  assert slurm.cluster_from_env()["cluster"]["worker"][1] == f"node01:{slurm.DEFAULT_PORT + 1}"
  assert distribute.is_chief()
  monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "1")  # one task: no cluster
  assert slurm.cluster_from_env() == {}


@pytest.mark.parametrize("env,needle", [
    (_step_env(5, 2, "localhost", "2"), "SLURM_PROCID=5 is outside the step's 2 tasks"),
    (_step_env(0, 2, "localhost", "two"), "SLURM job step environment not understood"),
    (_step_env(0, 2, "localhost", "2", "port"), "SLURM_STEP_RESV_PORTS='port'")])
def test_a_bad_job_step_is_one_line(monkeypatch, env, needle):
  monkeypatch.setenv("TF_CONFIG", "")
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  with pytest.raises(UserError, match=needle) as e:
    slurm.cluster_from_env()
  assert "\n" not in str(e.value)


def test_launch_prints_an_sbatch_script(tmp_path):
  rc, so, se = cli("onemodel-launch", "--slurm", "--num_workers=4", "--",
                   "--gin_file=gin/experiments/mnist.gin", f"--output_dir={tmp_path}/my run")
  assert rc == 0, se[-2000:]
  assert so.startswith("#!/bin/bash\n") and "#SBATCH --nodes=4\n" in so
  assert (f"srun --resv-ports=4 --kill-on-bad-exit=1 onemodel-train --strategy=multi_worker "
          f"--gin_file=gin/experiments/mnist.gin '--output_dir={tmp_path}/my run'") in so
  rc, so, se = cli("onemodel-launch", "--slurm", "--num_ps=1", "--", "--output_dir=x")
  one_line_error(rc, se, "--slurm runs synchronous workers only")


def _two_free_ports():
  for _ in range(50):
    with socket.socket() as s:
      s.bind(("localhost", 0))
      port = s.getsockname()[1]
    try:
      with socket.socket() as s:
        s.bind(("localhost", port + 1))
      return port
    except OSError:
      continue
  pytest.skip("no two consecutive free ports")


def _srun_tasks(out, data_dir, manual_dir, steps, port, extra=()):
  """Two `onemodel-train` processes with the environment srun gives two tasks on one
  node (no TF_CONFIG), each in its own process group."""
  env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
  return [subprocess.Popen(
      [os.path.join(BIN, "onemodel-train"), "--strategy=multi_worker",
       *_train_args(out, data_dir, manual_dir, steps, extra)],
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
      start_new_session=True,
      env=dict(env, TF_CPP_MIN_LOG_LEVEL="2",
               **_step_env(i, 2, "localhost", "2", f"{port}-{port + 1}")))
      for i in range(2)]


def test_two_srun_tasks_train_as_one_cluster(tmp_path, data_dir, manual_dir):
  """Two processes with the environment srun gives two tasks on one node (no TF_CONFIG)
  train as synchronous workers: both reach the last step with the same weights."""
  out = tmp_path / "run"
  outs = []
  for p in _srun_tasks(out, data_dir, manual_dir, 4, _two_free_ports()):
    rc, text = _finish(p, 300)
    assert rc == 0, text[-3000:]
    outs.append(text)
  assert "SLURM job step: worker 0 of a 2-worker cluster" in outs[0]
  assert "SLURM job step: worker 1 of a 2-worker cluster" in outs[1]
  chief_path, chief = _weights(str(out / "checkpoints"))
  other_path, other = _weights(str(out / ".worker_scratch" / "worker_1"))
  assert chief_path.endswith("ckpt-4") and other_path.endswith("ckpt-4")
  _assert_same(chief, other, 1e-6)


def test_a_preempted_srun_step_resumes_exactly(tmp_path, data_dir, manual_dir):
  """SLURM preempts a job step by sending SIGTERM to its tasks: both tasks save at one
  agreed step and exit 143; the same srun again resumes there and ends with the weights
  of an uninterrupted 2-task run, bit for bit."""
  port = _two_free_ports()
  # No periodic checkpoint before the end: the only one mid-run is the preemption's.
  run = lambda out: _srun_tasks(out, data_dir, manual_dir, 60, port,
                                ["TrainConfig.checkpoint_every_steps=1000"])
  for p in run(tmp_path / "whole"):
    rc, text = _finish(p, 300)
    assert rc == 0, text[-3000:]
  procs = run(tmp_path / "step")
  lines = []
  for line in procs[0].stdout:  # the chief's log: signal once it trains
    lines.append(line)
    if re.match(r"step \d+/60", line):
      for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
      break
  texts = []
  for i, p in enumerate(procs):
    rc, text = _finish(p, 300)
    text = ("".join(lines) if i == 0 else "") + text
    assert rc == 143 and "Traceback" not in text, text[-3000:]
    texts.append(text)
  saved = [re.search(r"preempted \(SIGTERM\) at step (\d+); checkpoint saved", t) for t in texts]
  assert all(saved), texts[0][-2000:]
  step = int(saved[0].group(1))
  assert int(saved[1].group(1)) == step and 0 < step < 60
  for i, p in enumerate(run(tmp_path / "step")):
    rc, text = _finish(p, 300)
    assert rc == 0, text[-3000:]
    if i == 0:
      assert re.search(rf"resumed from \S+ckpt-{step} at step {step}\b", text), text[-2000:]
  whole = _weights(str(tmp_path / "whole" / "checkpoints"))[1]
  resumed = _weights(str(tmp_path / "step" / "checkpoints"))[1]
  assert whole.keys() == resumed.keys() and whole
  for name in whole:  # bitwise: TrainConfig.deterministic=True
    np.testing.assert_array_equal(whole[name], resumed[name], err_msg=name)

"""Strategy selection and fail-fast paths (in-process, no cluster)."""

import json
import socket
import time
import types

import pytest

from onemodel import distribute
from onemodel.errors import UserError


def test_multi_worker_needs_tf_config(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(UserError, match="needs TF_CONFIG"):
    distribute.get_strategy("multi_worker")


def test_bad_tf_config(monkeypatch):
  monkeypatch.setenv("TF_CONFIG", "{not json")
  with pytest.raises(UserError, match="TF_CONFIG is not valid JSON"):
    distribute.get_strategy("parameter_server")
  monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {}}))
  with pytest.raises(UserError, match="'cluster' and 'task'"):
    distribute.get_strategy("multi_worker")


def test_chief_detection(monkeypatch):
  cluster = {"worker": ["localhost:1", "localhost:2"]}
  monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                              "task": {"type": "worker", "index": 1}}))
  assert not distribute.is_chief()
  monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                              "task": {"type": "worker", "index": 0}}))
  assert distribute.is_chief()
  monkeypatch.delenv("TF_CONFIG")
  assert distribute.is_chief()


def test_unknown_strategy():
  with pytest.raises(UserError, match="unknown --strategy 'mirored'"):
    distribute.get_strategy("mirored")


def test_tpu_without_tpu_fails_fast():
  t0 = time.time()
  with pytest.raises(UserError, match="no TPU found"):
    distribute.get_strategy("tpu")
  assert time.time() - t0 < 10


def test_tpu_grpc_address_with_nothing_listening_fails_fast():
  s = socket.socket()
  s.bind(("localhost", 0))
  port = s.getsockname()[1]
  s.close()  # nothing listens there now
  t0 = time.time()
  with pytest.raises(UserError, match="nothing answers"):
    distribute.get_strategy("tpu", tpu=f"grpc://127.0.0.1:{port}")
  assert time.time() - t0 < 10


def _fake_strategy(replicas, device):
  devices = tuple(f"/job:worker/replica:0/task:{i}/device:{device}:0" for i in range(replicas))
  return types.SimpleNamespace(num_replicas_in_sync=replicas,
                               extended=types.SimpleNamespace(worker_devices=devices))


def test_xla_step_is_refused_only_where_it_cannot_compile():
  """XLA has no CPU collectives: a recipe with jit_compile runs on a CPU cluster without
  it (the launcher's 2-worker run of gin/experiments/mnist.gin failed with
  'Collectives are not yet implemented for CPU devices when compiling with XLA')."""
  import tensorflow as tf
  assert distribute.xla_step_problem(tf.distribute.OneDeviceStrategy("/cpu:0")) == ""
  assert distribute.xla_step_problem(_fake_strategy(1, "CPU")) == ""
  assert distribute.xla_step_problem(_fake_strategy(8, "TPU")) == ""
  assert distribute.xla_step_problem(_fake_strategy(2, "GPU")) == ""
  assert "no collectives on CPU" in distribute.xla_step_problem(_fake_strategy(2, "CPU"))
  parameter_server = object.__new__(tf.distribute.ParameterServerStrategy)
  assert "parameter-server" in distribute.xla_step_problem(parameter_server)

"""Strategy selection: the only module that touches devices, TF_CONFIG and resolvers.

  --strategy=one_device | mirrored | multi_worker | parameter_server | tpu  [--tpu=NAME]

The default picks one_device or mirrored from the visible devices. Clusters come from
TF_CONFIG (one JSON per process, as Kubeflow and `onemodel-launch` write it) or from a
SLURM job step (slurm.py). The trainer is written against `tf.distribute.Strategy`; only
parameter-server training needs a `ClusterCoordinator` on top (see trainer.py).
"""

import json
import os
import socket
import time
from typing import Optional

import tensorflow as tf

from onemodel import slurm
from onemodel.errors import UserError

STRATEGIES = ("one_device", "mirrored", "multi_worker", "parameter_server", "tpu")


def tf_config() -> dict:
  """This process's cluster: TF_CONFIG, or one built from a SLURM job step (slurm.py),
  then written to TF_CONFIG for TensorFlow's own resolvers."""
  raw = os.environ.get("TF_CONFIG", "")
  if not raw:
    cfg = slurm.cluster_from_env()
    if not cfg:
      return {}
    raw = os.environ["TF_CONFIG"] = json.dumps(cfg)
    task = cfg["task"]
    print(f"onemodel: SLURM job step: {task['type']} {task['index']} of a "
          f"{len(cfg['cluster']['worker'])}-worker cluster", flush=True)
  try:
    cfg = json.loads(raw)
  except json.JSONDecodeError as e:
    raise UserError(f"TF_CONFIG is not valid JSON: {e}") from e
  if not isinstance(cfg, dict) or "cluster" not in cfg or "task" not in cfg:
    raise UserError("TF_CONFIG must have 'cluster' and 'task' (see README, 'Clusters')")
  task, cluster = cfg["task"], cfg["cluster"]
  if not isinstance(task, dict) or not isinstance(cluster, dict):
    raise UserError("TF_CONFIG 'cluster' and 'task' must be JSON objects")
  kind, index = task.get("type", "chief"), task.get("index", 0)
  if kind == "evaluator":  # TensorFlow's side-car evaluator is not part of the cluster
    return cfg
  if kind not in cluster:
    raise UserError(f"TF_CONFIG task type {kind!r} is not in its cluster (which has "
                    f"{', '.join(sorted(cluster)) or 'nothing'})")
  n = len(cluster[kind])
  if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
    raise UserError(f"TF_CONFIG task index {index!r} is out of range: the cluster has "
                    f"{n} {kind} task(s), indices 0..{n - 1}")
  return cfg


def default_device() -> str:
  """Where a single-device job (training, evaluation, export) runs: the first GPU or
  TPU core if there is one, else the CPU."""
  for kind in ("GPU", "TPU"):
    devices = tf.config.list_logical_devices(kind)
    if devices:
      return devices[0].name
  return "/cpu:0"


def local_replicas(strategy) -> int:
  """Replicas this process drives (all of them, except under multi-worker training)."""
  return strategy.num_replicas_in_sync // max(worker_count(strategy), 1)


def xla_step_problem(strategy) -> str:
  """Why a train step cannot compile with XLA under `strategy` ('' if it can).

  XLA compiles no collectives for CPU devices ("Collectives are not yet implemented for
  CPU devices when compiling with XLA", TensorFlow b/194942685), and the step
  all-reduces the token count and the gradients across replicas. Under parameter-server
  training the step reads variables placed on the servers, which a compiled step on a
  worker cannot ("Trying to access resource ... located in device /job:ps", XLA's known
  issues: tf.Variable on a different device)."""
  if isinstance(strategy, tf.distribute.ParameterServerStrategy):
    return "parameter-server training reads remote variables in the step"
  # A one-worker cluster still all-reduces (over a group of one).
  collectives = strategy.num_replicas_in_sync > 1 or isinstance(
      strategy, tf.distribute.MultiWorkerMirroredStrategy)
  if collectives and any("CPU" in d.upper() for d in strategy.extended.worker_devices):
    return (f"XLA has no collectives on CPU devices ({strategy.num_replicas_in_sync} "
            "CPU replicas)")
  return ""


def step_jit_compile(strategy, wanted: bool) -> bool:
  """Whether to compile the train step with XLA: `wanted` (TrainConfig.jit_compile)
  where it compiles under `strategy`; elsewhere False, with one note, so that a recipe
  tuned with XLA on one device still runs on a CPU cluster."""
  why_not = xla_step_problem(strategy) if wanted else ""
  if why_not:
    print(f"onemodel: note: TrainConfig.jit_compile=True is ignored here: {why_not}; "
          "the train step runs without XLA", flush=True)
  return wanted and not why_not


def final_barrier(strategy):
  """Multi-worker Mirrored: a last collective at the end of training, so no worker
  leaves while the chief is still evaluating (the coordination service would report
  the departed worker as crashed)."""
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    tf.function(lambda: strategy.reduce(
        tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None))()


def _tasks(resolver, kind: str) -> int:
  spec = resolver.cluster_spec()
  return spec.num_tasks(kind) if kind in spec.jobs else 0


def worker_count(strategy) -> int:
  """Synchronous workers (a 'chief' task counts as one); 1 without a multi-worker
  cluster, and under parameter-server training (its coordinator is the one process
  that drives the step: see `ps_worker_count`)."""
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    r = strategy.cluster_resolver
    return max(1, _tasks(r, "chief") + _tasks(r, "worker"))
  return 1


def ps_worker_count() -> int:
  """The workers a parameter-server cluster's coordinator schedules steps on, from
  TF_CONFIG as `make_strategy` read it (TF 2.21's ParameterServerStrategy leaves its
  `cluster_resolver` property None)."""
  return _tasks(tf.distribute.cluster_resolver.TFConfigClusterResolver(), "worker")


def worker_index(strategy) -> int:
  """This process's place among the synchronous workers (0 without a cluster): the
  chief first, then the workers in task order."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or \
      worker_count(strategy) == 1:
    return 0
  r = strategy.cluster_resolver
  if r.task_type == "chief":
    return 0
  return r.task_id + _tasks(r, "chief")


def newest_common_step(strategy, steps, slots: int) -> int:
  """Multi-worker: the newest of `steps` (this worker's checkpoint steps, at most
  `slots`) that every worker has, 0 if none. Each worker restores its own checkpoint,
  and a kill between the chief's save and another worker's leaves them a save apart:
  restoring each one's latest would resume them at different steps (a silent divergence,
  or a hang in the first collective)."""
  mine = tf.constant((list(steps)[-slots:] + [-1] * slots)[:slots], tf.int64)
  every = tf.function(lambda: strategy.gather(
      strategy.run(lambda: mine[tf.newaxis]), axis=0))().numpy()  # [replicas, slots]
  common = set.intersection(*[set(row) for row in every.tolist()]) - {-1}
  return max(common, default=0)


def task() -> tuple:
  """(task type, index) of this process, ('chief', 0) without a cluster."""
  t = tf_config().get("task", {})
  return t.get("type", "chief"), int(t.get("index", 0))


def is_chief(strategy: Optional[tf.distribute.Strategy] = None) -> bool:
  """The process that writes summaries, configs and the real checkpoints."""
  cfg = tf_config()
  if not cfg:
    return True
  kind, index = task()
  cluster = cfg["cluster"]
  if "chief" in cluster:
    return kind == "chief"
  return kind == "worker" and index == 0


def _need_cluster(name):
  cfg = tf_config()
  if not cfg:
    raise UserError(f"--strategy={name} needs TF_CONFIG describing the cluster; for a "
                    "local cluster use onemodel-launch (see README, 'Clusters')")
  return cfg


def _check_tpu_address(tpu: str, timeout: float = 5.0):
  """A grpc:// address with nothing listening makes TPUClusterResolver hang for minutes
  (measured with TF 2.21): probe it first and fail fast."""
  if not tpu.startswith("grpc://"):
    return
  host, _, port = tpu[len("grpc://"):].rpartition(":")
  try:
    with socket.create_connection((host, int(port)), timeout=timeout):
      pass
  except (OSError, ValueError) as e:
    raise UserError(f"--tpu={tpu}: nothing answers at that address ({e})") from e


def tpu_strategy(tpu: str) -> tf.distribute.Strategy:
  _check_tpu_address(tpu)
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except (ValueError, tf.errors.NotFoundError, tf.errors.UnavailableError,
          tf.errors.InvalidArgumentError, RuntimeError) as e:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise UserError(f"no TPU found for --tpu={tpu or '(auto)'}: {first}") from e
  return tf.distribute.TPUStrategy(resolver)


def get_strategy(name: str = "", tpu: str = "") -> tf.distribute.Strategy:
  if tpu and not name:
    name = "tpu"
  if not name:
    gpus = tf.config.list_logical_devices("GPU")
    name = "mirrored" if len(gpus) > 1 else "one_device"
  if name == "one_device":
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker":
    _need_cluster(name)
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
  if name == "parameter_server":
    _need_cluster(name)
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    return tf.distribute.ParameterServerStrategy(resolver)
  if name == "tpu":
    return tpu_strategy(tpu)
  raise UserError(f"unknown --strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def serve_if_server_task(name: str) -> bool:
  """Parameter-server training: 'worker' and 'ps' processes only host a server that the
  coordinator (the 'chief') drives. Returns True after the server ends."""
  if name != "parameter_server":
    return False
  kind, index = task()
  if kind not in ("worker", "ps"):
    return False
  resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
  # Workers need >= 3 inter-op threads or coordinator.join() can deadlock (measured with TF 2.21: an in-process cluster hangs).
  config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=4)
  server = tf.distribute.Server(resolver.cluster_spec(), job_name=kind, task_index=index,
                                protocol="grpc", config=config, start=True)
  print(f"{kind} {index}: serving on {resolver.cluster_spec().task_address(kind, index)}",
        flush=True)
  server.join()
  return True


# How long a non-chief worker waits for the chief (data preparation, vocabularies).
WAIT_FOR_CHIEF_S = 1800


def wait_for_chief(ready, what: str, timeout_s: float = WAIT_FOR_CHIEF_S):
  """Non-chief workers poll `ready()` until the chief has made `what` on the shared
  filesystem; past `timeout_s` a UserError says what is missing."""
  deadline = time.time() + timeout_s
  while not ready():
    if time.time() > deadline:
      raise UserError(f"{what} by the chief; run onemodel-prepare first")
    time.sleep(2)

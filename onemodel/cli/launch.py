"""onemodel-launch: a localhost cluster for onemodel-train, one process per task.

  onemodel-launch --num_workers=2 -- --gin_file=gin/experiments/mnist.gin --output_dir=runs/mw
  onemodel-launch --num_workers=2 --num_ps=1 -- --gin_file=... --output_dir=runs/ps
  onemodel-launch --slurm --num_workers=4 -- --gin_file=... --output_dir=runs/mw > job.sh
  onemodel-launch --k8s --num_workers=4 --image=IMAGE --volume_claim=CLAIM -- \
      --gin_file=... --output_dir=/shared/runs/mw | kubectl apply -f -

Without --num_ps: synchronous multi-worker training (--strategy=multi_worker; worker 0 is
the chief). With --num_ps: asynchronous parameter-server training (--strategy=
parameter_server; a 'chief' coordinator process plus workers and parameter servers).
Each process gets its own TF_CONFIG; its output is streamed with a `[worker 1]` prefix.
When a process fails, every process started is stopped (and with --max_restarts the whole
cluster is started again, resuming from the last checkpoint); under parameter-server
training a failed worker is restarted alone while the coordinator carries on. SIGTERM
to a worker (a preemption) makes every worker save at one step and exit; the launcher
then exits 143 and the same command resumes. SIGTERM or Ctrl-C to the launcher itself
passes SIGTERM on to every task and gives them time to save, then exits 143 or 130
(under parameter-server training the coordinator first: its save reads the servers)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from absl import app
from absl import flags

from onemodel import k8s
from onemodel import slurm
from onemodel.cli import common
from onemodel.errors import SIGNAL_EXIT

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_workers", 2, "Worker processes.")
flags.DEFINE_integer("num_ps", 0, "Parameter servers (> 0: asynchronous training).")
flags.DEFINE_integer("max_restarts", 0, "Times to restart after a failure.")
flags.DEFINE_string("host", "localhost", "Address the tasks listen on.")
flags.DEFINE_boolean("slurm", False, "Print an sbatch script that trains on --num_workers "
                     "SLURM nodes (one synchronous worker each), and exit.")
flags.DEFINE_boolean("k8s", False, "Print a Kubernetes indexed Job and headless Service "
                     "that train on --num_workers pods (one synchronous worker each), "
                     "for `kubectl apply -f -`, and exit.")
flags.DEFINE_string("job_name", "onemodel", "--slurm/--k8s: the job's name (--k8s: also "
                    "the Service's and the pods' DNS prefix).")
flags.DEFINE_string("image", "", "--k8s: the container image with onemodel installed.")
flags.DEFINE_string("volume_claim", "", "--k8s: a PersistentVolumeClaim mounted on every "
                    "pod at --mount_path (the shared --output_dir and --data_dir).")
flags.DEFINE_string("mount_path", "/shared", "--k8s: where --volume_claim is mounted.")

PROG = "onemodel-launch"
# A Kubernetes object name that is also a DNS label once the pod index is appended.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,48}[a-z0-9])?")


def free_ports(n):
  socks, ports = [], []
  for _ in range(n):
    s = socket.socket()
    s.bind(("localhost", 0))
    socks.append(s)
    ports.append(s.getsockname()[1])
  for s in socks:
    s.close()
  return ports


def cluster_spec(num_workers, num_ps, host):
  ports = iter(free_ports(num_workers + num_ps + (1 if num_ps else 0)))
  cluster = {"worker": [f"{host}:{next(ports)}" for _ in range(num_workers)]}
  if num_ps:
    cluster["ps"] = [f"{host}:{next(ports)}" for _ in range(num_ps)]
    cluster["chief"] = [f"{host}:{next(ports)}"]
  return cluster


def tasks(cluster):
  order = ["ps", "worker", "chief"]
  return [(kind, i) for kind in order for i in range(len(cluster.get(kind, [])))]


class Proc:

  def __init__(self, kind, index, cluster, train_args, strategy):
    self.kind, self.index = kind, index
    self.name = f"{kind} {index}"
    env = dict(os.environ, TF_CONFIG=json.dumps(
        {"cluster": cluster, "task": {"type": kind, "index": index}}),
        PYTHONUNBUFFERED="1")
    exe = os.path.join(os.path.dirname(sys.executable), "onemodel-train")
    self.p = subprocess.Popen([exe, f"--strategy={strategy}", *train_args], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    print(f"[{PROG}] started {self.name} (pid {self.p.pid})", flush=True)
    self.t = threading.Thread(target=self._pump, daemon=True)
    self.t.start()

  def _pump(self):
    for line in self.p.stdout:
      sys.stdout.write(f"[{self.name}] {line}")
      sys.stdout.flush()

  def signal(self, signum) -> None:
    try:
      os.killpg(self.p.pid, signum)
    except ProcessLookupError:
      pass


# onemodel-train's exit status after SIGTERM once its checkpoint is saved (128 + 15).
PREEMPTED = SIGNAL_EXIT["SIGTERM"]
# How long workers get to finish a preemption save before they are killed; a scheduler's
# grace period is often 30 s (Kubernetes' default terminationGracePeriodSeconds).
SAVE_GRACE_S = 25.0


def stop_all(procs, grace_s: float, coordinator_first: bool = False) -> None:
  """SIGTERM to every running task at once (under multi-worker training the save after
  SIGTERM is collective, so all must be alive for it), then SIGKILL after `grace_s`.
  coordinator_first (parameter-server training): the coordinator's save reads the
  variables from the parameter servers, so they and the workers are signalled only once
  the coordinator has exited (or its grace has run out)."""
  deadline = time.time() + grace_s
  first = [pr for pr in procs if coordinator_first and pr.kind == "chief"]
  for group, kill in ((first, False), (procs, True)):
    for pr in group:
      if pr.p.poll() is None:
        pr.signal(signal.SIGTERM)
    for pr in group:
      try:
        pr.p.wait(timeout=max(deadline - time.time(), 0.1))
      except subprocess.TimeoutExpired:
        if kill:
          pr.signal(signal.SIGKILL)
          pr.p.wait()


def wait_all(procs, timeout_s: float) -> None:
  deadline = time.time() + timeout_s
  while time.time() < deadline and any(pr.p.poll() is None for pr in procs):
    time.sleep(0.2)


def run_cluster(cluster, train_args, strategy, is_async, restarts_left):
  """-> exit code of one cluster run (0 when training finished, PREEMPTED when the
  workers saved on SIGTERM)."""
  procs = [Proc(k, i, cluster, train_args, strategy) for k, i in tasks(cluster)]
  grace = 5.0  # a failed task: the others may wait on it in a collective forever
  try:
    while True:
      time.sleep(0.2)
      for pr in procs:
        rc = pr.p.poll()
        if rc is None:
          continue
        if is_async and pr.kind == "chief" and rc == 0:
          return 0  # the coordinator finished; workers and ps serve until stopped
        if not is_async and rc == 0:
          if all(q.p.poll() == 0 for q in procs):
            return 0
          continue
        if rc == PREEMPTED and (not is_async or pr.kind == "chief"):
          # Multi-worker: TensorFlow's PreemptionCheckpointHandler makes every worker
          # save at one agreed step, then exit; let the others finish writing instead of
          # stopping them. Parameter-server: the coordinator saved before exiting.
          if not is_async:
            wait_all(procs, SAVE_GRACE_S)
          print(f"[{PROG}] {pr.name} was preempted (SIGTERM) after saving", flush=True)
          return PREEMPTED
        if is_async and pr.kind == "worker" and restarts_left[0] > 0:
          restarts_left[0] -= 1
          print(f"[{PROG}] {pr.name} exited with {rc}; restarting it "
                "(the coordinator re-schedules its work)", flush=True)
          procs[procs.index(pr)] = Proc(pr.kind, pr.index, cluster, train_args, strategy)
          continue
        print(f"[{PROG}] {pr.name} exited with {rc}; stopping the cluster", flush=True)
        return 1 if rc == PREEMPTED else rc or 1  # a server task saves nothing
  except KeyboardInterrupt:  # SIGTERM or Ctrl-C to the launcher: the tasks save first
    grace = SAVE_GRACE_S
    raise
  finally:
    stop_all(procs, grace, coordinator_first=is_async)


def main(argv):
  train_args = argv[1:]
  if FLAGS.num_workers < 1 or FLAGS.num_ps < 0:
    sys.exit(f"{PROG}: error: need --num_workers >= 1 and --num_ps >= 0")
  if not any(a.startswith("--output_dir") for a in train_args):
    sys.exit(f"{PROG}: error: pass onemodel-train's flags after '--', including "
             "--output_dir")
  if FLAGS.slurm or FLAGS.k8s:
    which = "--slurm" if FLAGS.slurm else "--k8s"
    if FLAGS.slurm and FLAGS.k8s:
      sys.exit(f"{PROG}: error: --slurm and --k8s exclude each other")
    if FLAGS.num_ps:
      sys.exit(f"{PROG}: error: {which} runs synchronous workers only; drop --num_ps")
    if not _DNS_LABEL.fullmatch(FLAGS.job_name):
      sys.exit(f"{PROG}: error: --job_name={FLAGS.job_name!r}: use lower-case letters, "
               "digits and '-' (a DNS label, at most 50 characters)")
    if FLAGS.slurm:
      print(slurm.sbatch_script(FLAGS.num_workers, train_args, FLAGS.job_name), end="")
      return
    if not FLAGS.image:
      sys.exit(f"{PROG}: error: --k8s needs --image (a container image with onemodel "
               "installed)")
    print(k8s.to_yaml(k8s.manifests(
        FLAGS.num_workers, train_args, FLAGS.image, FLAGS.job_name, FLAGS.volume_claim,
        FLAGS.mount_path, max_restarts=FLAGS.max_restarts)), end="")
    return
  is_async = FLAGS.num_ps > 0
  strategy = "parameter_server" if is_async else "multi_worker"
  restarts_left = [FLAGS.max_restarts]

  received = []

  def _interrupt(signum, frame):
    received.append(signum)
    raise KeyboardInterrupt

  signal.signal(signal.SIGTERM, _interrupt)
  try:
    while True:
      cluster = cluster_spec(FLAGS.num_workers, FLAGS.num_ps, FLAGS.host)
      print(f"[{PROG}] cluster: {json.dumps(cluster)}", flush=True)
      rc = run_cluster(cluster, train_args, strategy, is_async, restarts_left)
      if rc == 0:
        print(f"[{PROG}] done", flush=True)
        return
      if rc == PREEMPTED:  # not a failure: the machines go away, the checkpoint stays
        print(f"{PROG}: preempted; the checkpoint of the step reached is saved; run the "
              "same command again to resume", file=sys.stderr, flush=True)
        sys.exit(PREEMPTED)
      if restarts_left[0] <= 0:
        sys.exit(f"{PROG}: error: a task failed (exit {rc}); every process was stopped")
      restarts_left[0] -= 1
      print(f"[{PROG}] restarting the cluster; training resumes from the last checkpoint",
            flush=True)
  except KeyboardInterrupt:
    # 143 for SIGTERM (a scheduler's preemption: the tasks saved), 130 for Ctrl-C, as
    # onemodel-train itself exits.
    terminated = signal.SIGTERM in received
    print(f"[{PROG}] {'terminated (SIGTERM)' if terminated else 'interrupted'}; every "
          "task was asked to save, then stopped", flush=True)
    sys.exit(PREEMPTED if terminated else 130)


def run():
  common.show_own_flags_in_help(main)
  app.run(main)


if __name__ == "__main__":
  run()

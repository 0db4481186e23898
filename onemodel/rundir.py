"""The run directory: one trainer at a time, its config files, metrics, and leftovers.

Layout of OUTPUT_DIR (local, `gs://` or any `tf.io.gfile` filesystem):
  .lock                   the trainer that owns the run (pid, host, process start); one
                          at a time
  config.gin              the config the checkpoints were trained with (eval/export read it)
  operative_config.gin    every value actually used
  checkpoints/            see checkpoints.py
  metrics_*.json, instruments.json, train/ and eval/ TensorBoard summaries
Nothing here is overwritten before the run's checkpoint restored with the new config;
every file is written to a temporary name and renamed (fileio.py).
"""

import json
import os
import shutil
import socket
import time

import tensorflow as tf

from onemodel import fileio
from onemodel.errors import UserError

LOCK = ".lock"


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _identity(pid: int) -> str:
  """'BOOT_ID:START_TICKS' of a live process on Linux, '' where /proc cannot tell: a pid
  alone is reused, by a restarted container most of all (PID 1 again, same hostname),
  which then found its own pid 'alive' in the lock and refused itself forever."""
  try:
    with open("/proc/sys/kernel/random/boot_id") as f:
      boot = f.read().strip()
    with open(f"/proc/{pid}/stat") as f:
      stat = f.read()
    # Field 22 of proc(5), counted after the command name, which may hold spaces.
    return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"
  except (OSError, IndexError):
    return ""


def _stale_reason(owner: dict, host: str) -> str:
  """Why a lock's owner is gone ('' if it may be alive), for owners on this host."""
  if owner.get("host") != host or not owner.get("pid"):
    return ""
  pid = int(owner["pid"])
  if not _alive(pid):
    return f"process {pid} is gone"
  if owner.get("started") and owner["started"] != _identity(pid):
    return f"process {pid} is gone; its pid now belongs to another process"
  return ""


class RunDir:
  """OUTPUT_DIR of one training run; only the chief writes into it."""

  def __init__(self, output_dir: str, is_chief: bool = True):
    if not output_dir:
      raise UserError("--output_dir is required")
    self.path, self.is_chief = output_dir, is_chief
    self._locked = False

  def join(self, *names) -> str:
    return os.path.join(self.path, *names)

  def check_writable(self, checkpoint_dir: str, needed_bytes: int = 0) -> None:
    """Fails early, with the directory's name, if this task cannot write its checkpoint
    directory (else a read-only one shows only at the first save, after training work)
    or, on the chief, OUTPUT_DIR; or if a local checkpoint directory has less room than
    `needed_bytes` (about one checkpoint). A non-chief worker probes only its own
    checkpoint dir: all workers probing one file in OUTPUT_DIR raced (one removed the
    other's probe, or the chief's cleanup removed a worker's half-written one)."""
    for probe_dir in ([""] if self.is_chief else []) + [checkpoint_dir]:
      self._probe(probe_dir)
    if needed_bytes and fileio.is_local(checkpoint_dir):
      existing = os.path.abspath(checkpoint_dir)
      while not os.path.isdir(existing):
        existing = os.path.dirname(existing)
      free = shutil.disk_usage(existing).free
      if free < needed_bytes:
        raise UserError(f"{checkpoint_dir} has {free / 2**20:.1f} MB free; a checkpoint of "
                        f"this run takes about {needed_bytes / 2**20:.1f} MB: make room or "
                        "choose another --output_dir")

  def _probe(self, probe_dir: str) -> None:
    probe = os.path.join(probe_dir or self.path, f".write_probe-{os.getpid()}")
    made = probe_dir and not tf.io.gfile.isdir(probe_dir)
    try:
      tf.io.gfile.makedirs(os.path.dirname(probe))
      fileio.atomic_write_text(probe, "ok")
      tf.io.gfile.remove(probe)
      if made:  # nothing is left in a run before its lock is taken (a refused trainer)
        tf.io.gfile.rmtree(probe_dir)
    except (OSError, tf.errors.OpError) as e:
      reason = getattr(e, "strerror", None) or getattr(e, "message", None) or e
      where = probe_dir if probe_dir else f"output dir {self.path}"
      raise UserError(f"{where} is not writable: {reason}") from e

  # -- one trainer per run ---------------------------------------------------------------

  def lock(self) -> None:
    """Takes OUTPUT_DIR/.lock, or fails in one line if a live trainer holds it. A lock
    left by a dead process on this host is taken over."""
    if not self.is_chief:
      return
    path, me = self.join(LOCK), {"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                                 "started": _identity(os.getpid())}
    for _ in range(2):
      if self._create_exclusive(path, json.dumps(me)):
        self._locked = True
        return
      try:
        owner = json.loads(fileio.read_text(path))
      except (ValueError, tf.errors.OpError):
        owner = {}
      stale = _stale_reason(owner, me["host"])
      if stale:
        print(f"onemodel: taking over the stale lock of {self.path} ({stale})", flush=True)
        tf.io.gfile.remove(path)
        continue
      raise UserError(
          f"output dir {self.path} is in use by another trainer (pid "
          f"{owner.get('pid', '?')} on {owner.get('host', '?')} since "
          f"{owner.get('since', '?')}); wait for it, use another --output_dir, or delete "
          f"{path} if that trainer is gone")
    raise UserError(f"could not take the lock {path}")

  @staticmethod
  def _create_exclusive(path: str, text: str) -> bool:
    if fileio.is_local(path):
      try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        return False
      with os.fdopen(fd, "w") as f:
        f.write(text)
      return True
    # Object stores have no exclusive create: best effort (check, then write).
    if tf.io.gfile.exists(path):
      return False
    fileio.atomic_write_text(path, text)
    return True

  def unlock(self) -> None:
    if self._locked:
      self._locked = False
      if tf.io.gfile.exists(self.join(LOCK)):
        tf.io.gfile.remove(self.join(LOCK))

  # -- files -----------------------------------------------------------------------------

  def write_text(self, name: str, text: str) -> None:
    if self.is_chief:
      fileio.atomic_write_text(self.join(name), text)

  def write_json(self, name: str, obj) -> None:
    if self.is_chief:
      fileio.atomic_write_json(self.join(name), obj)

  def read_config(self) -> str:
    path = self.join("config.gin")
    return fileio.read_text(path) if tf.io.gfile.exists(path) else ""

  def clean_leftovers(self) -> list:
    """Removes what killed processes leave behind: temporary files of atomic writes and
    `ckpt-N_temp` directories of interrupted checkpoint writes -> what was removed."""
    if not self.is_chief:
      return []
    gone = fileio.remove_temp_files(self.path)
    ckpt_dir = self.join("checkpoints")
    if tf.io.gfile.isdir(ckpt_dir):
      gone += fileio.remove_temp_files(ckpt_dir)
      for name in tf.io.gfile.listdir(ckpt_dir):
        name = name.rstrip("/")
        if name.endswith("_temp") and tf.io.gfile.isdir(os.path.join(ckpt_dir, name)):
          tf.io.gfile.rmtree(os.path.join(ckpt_dir, name))
          gone.append(name)
    return gone


# Bindings that change what a checkpoint holds (the problems, the model's and the
# adapters' shapes, the optimizer's slots): listed first when a resume does not fit.
_STRUCTURAL = ("TrainConfig.problem", "BackboneConfig.", "ImageConfig.", "SpeechConfig.",
               "optimizer.name", "PruningConfig.", "TrainConfig.grad_accum_steps")
# Bindings a run resumes across unchanged (schedule lengths, cadences, evaluation,
# decoding): never the reason a checkpoint does not fit, so not listed.
_RESUMABLE = ("TrainConfig.train_steps", "TrainConfig.log_every_steps",
              "TrainConfig.checkpoint_every_steps", "TrainConfig.keep_checkpoints",
              "TrainConfig.eval_", "TrainConfig.final_eval_role", "TrainConfig.report_mfu",
              "TrainConfig.steps_per_loop", "DecodeConfig.", "final/DecodeConfig.")


def config_differences(old: str, new: str, limit: int = 4) -> list:
  """Bindings that differ between two gin config texts, as 'name: old -> new': the
  ones that change what a checkpoint holds first, those a run resumes across left out."""
  def bindings(text):
    out = {}
    for line in text.splitlines():
      line = line.split("#", 1)[0].strip()
      if " = " in line and not line.startswith(("import ", "include ")):
        k, v = line.split(" = ", 1)
        out[k.strip()] = v.strip()
    return out

  a, b = bindings(old), bindings(new)
  keys = sorted((k for k in set(a) | set(b)
                 if a.get(k) != b.get(k) and not k.startswith(_RESUMABLE)),
                key=lambda k: (not k.startswith(_STRUCTURAL), k))
  diffs = [f"{k}: {a.get(k, '(unset)')} -> {b.get(k, '(unset)')}" for k in keys]
  return diffs[:limit] + ([f"and {len(diffs) - limit} more"] if len(diffs) > limit else [])

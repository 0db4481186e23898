"""Checkpoints a run can trust: complete, finite, and restorable past a corrupt file.

- Every model variable is saved under its own, unique path (`weights/<path>`); two
  variables with one path would silently share a checkpoint entry, so building fails.
  Dropout's RNG states are saved under the model's attribute path to their layer, not
  Keras' process-wide counter names (`rng_state_paths`).
- A restore for training must match every object of the model, optimizer, step and
  input pipeline (`assert_existing_objects_matched`); a run whose checkpoint does not fit
  the current config is an `IncompatibleRun`, not a partly initialized model.
- A checkpoint that cannot be read (truncated, corrupt) is moved aside into
  `checkpoints/corrupt/` with a warning, and the one before it is used. A storage error
  that may pass (GCS, NFS) is retried, then stops the run with the checkpoint in place.
- A checkpoint with a non-finite weight is never written (it would push out good ones).
"""

import math
import os
import time
from typing import Optional, Sequence

import keras
import tensorflow as tf

from onemodel import quiet
from onemodel.errors import UserError

# Errors that mean "this file cannot be read", as opposed to "it does not fit".
# (A truncated data file surfaces from the checkpoint reader as IndexError "Read less
# bytes than requested"; a garbage .index as a bare OpError, "file is too short to be an
# sstable", also caught, after the InvalidArgumentError of a checkpoint that does not fit.)
_UNREADABLE = (tf.errors.DataLossError, tf.errors.NotFoundError, tf.errors.OutOfRangeError,
               tf.errors.UnknownError, tf.errors.InternalError, IndexError, OSError)
# Of those, the ones that say the bytes themselves are bad: only these move a checkpoint
# aside. The others (UnknownError, NotFound, OSError, Unavailable...) are what GCS or NFS
# also raise for a moment's outage: retried after these waits (seconds), then one line
# that leaves the checkpoint where it is.
_DATA_LOSS = (tf.errors.DataLossError, tf.errors.OutOfRangeError, IndexError)
RETRY_WAITS_S = (1.0, 4.0, 16.0)


def _is_data_loss(e: Exception) -> bool:
  return isinstance(e, _DATA_LOSS) or type(e) is tf.errors.OpError  # pylint: disable=unidiomatic-typecheck


class IncompatibleRun(UserError):
  """The run's checkpoint does not fit the model the current config builds."""


class NonFinite(UserError):
  """Training produced a non-finite loss or weight."""


def variables_by_path(variables: Sequence[tf.Variable], renamed: Optional[dict] = None,
                      keep_renamed: bool = True) -> dict:
  """{path: variable}, failing if two variables share a path (one checkpoint entry).
  `renamed`: {id(variable): path} for variables whose own path is not stable (the RNG
  states); `keep_renamed=False` leaves those out (evaluation draws no dropout, and a
  checkpoint written before they had stable paths still restores)."""
  out = {}
  for v in variables:
    if not keep_renamed and id(v) in (renamed or {}):
      continue
    path = (renamed or {}).get(id(v), v.path)
    if path in out and out[path] is not v:
      raise ValueError(f"two model variables share the checkpoint path {path!r}: name "
                       "each layer uniquely (adapters are named by their problem)")
    out[path] = v
  return out


def rng_state_paths(root) -> dict:
  """{id(state variable): stable path} of every Keras `SeedGenerator` under `root` (the
  RNG state of each dropout layer), the path being the attribute names that lead to it.

  Keras names a seed generator from a counter shared by the whole process
  (`seed_generator_12/seed_generator_state`), so the path a dropout layer's state was
  saved under depended on what the process had built before: a second model in one
  process (a notebook, an evaluation after a training run) could not restore a
  checkpoint with dropout."""
  out, seen = {}, set()

  def visit(obj, path):
    if id(obj) in seen:
      return
    seen.add(id(obj))
    if isinstance(obj, keras.random.SeedGenerator):
      out[id(obj.state)] = f"{path}/seed_generator_state"
    elif isinstance(obj, keras.layers.Layer):
      for name, value in sorted(vars(obj).items()):
        if not name.startswith("_"):
          visit(value, f"{path}/{name}" if path else name)
    elif isinstance(obj, (list, tuple)):
      for i, value in enumerate(obj):
        visit(value, f"{path}/{i}")
    elif isinstance(obj, dict):
      for key, value in sorted(obj.items(), key=lambda kv: str(kv[0])):
        visit(value, f"{path}/{key}")

  visit(root, "")
  return out


def all_finite(variables: Sequence[tf.Variable]) -> bool:
  return bool(tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables
                             if tf.as_dtype(v.dtype).is_floating]))


class Keeper:
  """A `tf.train.CheckpointManager` over `directory` with the rules above."""

  def __init__(self, checkpoint: tf.train.Checkpoint, directory: str, max_to_keep: int,
               watched: Sequence[tf.Variable] = (), without_inputs=None,
               read_only: bool = False):
    self.checkpoint, self.directory, self.max_to_keep = checkpoint, directory, max_to_keep
    # Evaluation, export, decoding: an unreadable checkpoint is skipped, never moved (a
    # trainer may still be writing the run).
    self.read_only = read_only
    self.watched = list(watched)
    # () -> the same checkpoint without the input iterators, for a resume after the
    # input pipeline changed (another batch size, shuffle buffer or data).
    self.without_inputs = without_inputs
    self.manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep)

  def estimated_bytes(self) -> int:
    """About what one checkpoint takes: the model's weights and the optimizer's
    variables (the input pipelines' shuffle buffers are not counted)."""
    optimizer = getattr(self.checkpoint, "optimizer", None)
    variables = list(getattr(self.checkpoint, "weights", {}).values()) + \
        list(optimizer.variables if optimizer is not None else [])
    seen = {id(v): v for v in variables}
    return sum(math.prod(v.shape) * tf.as_dtype(v.dtype).size for v in seen.values())

  @property
  def latest(self) -> Optional[str]:
    return self.manager.latest_checkpoint

  def save(self, step: int) -> str:
    """Saves at `step` unless a watched variable is non-finite (then NonFinite)."""
    if self.watched and not all_finite(self.watched):
      raise NonFinite(f"step {step}: a model weight is not finite; not saving a "
                      f"checkpoint (the last good one is {self.latest or 'none'})")
    if self.latest and self.latest.endswith(f"-{step}"):
      return self.latest
    try:
      return self.manager.save(checkpoint_number=step)
    except (OSError, tf.errors.OpError) as e:  # a full disk, a directory gone read-only
      for temp in tf.io.gfile.glob(os.path.join(self.directory, f"ckpt-{step}_temp*")):
        tf.io.gfile.rmtree(temp)  # the half-written checkpoint; the earlier ones stay
      raise UserError(f"checkpoint at step {step} could not be written to {self.directory} "
                      f"({_first_line(e)}); the earlier checkpoints are kept (latest: "
                      f"{self.latest or 'none'}): make room, then run the same command to "
                      "resume") from e

  def restore(self, path: str = "", complete: bool = True, config_diff=()) -> Optional[str]:
    """Restores `path`, or the newest readable checkpoint -> its path (None: none yet).

    complete: every existing object must be in the checkpoint (training); otherwise
    only what exists is restored and the checkpoint may hold more (evaluation builds
    no optimizer or input pipeline) — but every model weight must still be found."""
    if path and not tf.io.gfile.exists(path + ".index"):
      raise UserError(f"checkpoint {path} " + (
          "is not a checkpoint: give its prefix, e.g. RUN/checkpoints/ckpt-1000 (no "
          "'.index')" if tf.io.gfile.exists(path) else "does not exist"))
    candidates = [path] if path else list(reversed(self.manager.checkpoints))
    for i, candidate in enumerate(candidates):
      e = self._try_restore(candidate, complete, config_diff)
      if e is None:
        return candidate
      if path:
        raise UserError(f"checkpoint {candidate} cannot be read: {_first_line(e)}") from e
      older = candidates[i + 1] if i + 1 < len(candidates) else None
      where = "left in place" if self.read_only else \
          f"moved to {self._quarantine(candidate)}"
      print(f"onemodel: warning: checkpoint {candidate} cannot be read "
            f"({_first_line(e)}); {where}"
            + (f", falling back to {older}" if older else
               "" if self.read_only else ", starting from scratch"), flush=True)
    return None

  def _try_restore(self, candidate: str, complete: bool, config_diff):
    """Restores one checkpoint -> None, or the data-loss error that makes it unreadable.
    A checkpoint that does not fit is an IncompatibleRun; a transient storage error is
    retried, then a UserError that leaves the checkpoint in place."""
    for wait in RETRY_WAITS_S + (None,):
      try:
        try:
          self._restore(self.checkpoint, candidate, complete)
        except tf.errors.OpError as e:
          if "dataset iterator" not in str(e) or self.without_inputs is None:
            raise
          print(f"onemodel: warning: the input pipeline differs from the one checkpoint "
                f"{candidate} was saved with (batch size, shuffle buffer or data "
                "changed); resuming the weights and optimizer, reading a fresh shuffle "
                "of the training data", flush=True)
          self._restore(self.without_inputs(), candidate, complete)
        return None
      except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
        _hide_unrestored_value_warnings()
        hint = "; ".join(config_diff) if config_diff else _first_line(e)
        raise IncompatibleRun(
            f"checkpoint {candidate} does not fit the model this config builds ("
            f"{hint}); train into a new --output_dir or keep the run's own config"
        ) from e
      except _UNREADABLE + (tf.errors.OpError,) as e:  # (after the clause above)
        if _is_data_loss(e):
          return e
        if wait is None:
          raise UserError(
              f"checkpoint {candidate} could not be read ({_first_line(e)}) in "
              f"{len(RETRY_WAITS_S) + 1} attempts; it is left in place (a storage "
              "outage does not make it corrupt): run the same command again") from e
        print(f"onemodel: warning: reading checkpoint {candidate} failed "
              f"({_first_line(e)}); retrying in {wait:g} s", flush=True)
        time.sleep(wait)
    return None

  @staticmethod
  def _restore(checkpoint, path, complete):
    status = checkpoint.restore(path)
    if not complete:
      status.expect_partial()
    status.assert_existing_objects_matched()

  def path_at(self, step: int) -> str:
    return os.path.join(self.directory, f"ckpt-{step}")

  def steps(self) -> list:
    """The steps of the checkpoints kept, oldest first."""
    return [int(p.rsplit("-", 1)[1]) for p in self.manager.checkpoints]

  def set_aside_after(self, step: int) -> list:
    """Moves the checkpoints newer than `step` into checkpoints/unagreed/ (a worker that
    saved a step the others did not; see distribute.newest_common_step) -> their paths."""
    newer = [p for p, s in zip(self.manager.checkpoints, self.steps()) if s > step]
    for prefix in newer:
      print(f"onemodel: {prefix} was saved by this worker only; moved to "
            f"{self._quarantine(prefix, 'unagreed')}, resuming with the other workers at "
            f"step {step}", flush=True)
    return newer

  def _quarantine(self, prefix: str, into: str = "corrupt") -> str:
    """Moves one checkpoint's files into checkpoints/INTO/ and drops it from the
    manager's list (the user's files are kept, never deleted)."""
    dest = os.path.join(self.directory, into)
    tf.io.gfile.makedirs(dest)
    for f in tf.io.gfile.glob(prefix + ".*"):
      tf.io.gfile.rename(f, os.path.join(dest, os.path.basename(f)), overwrite=True)
    state = tf.train.get_checkpoint_state(self.directory)
    stamps = dict(zip(state.all_model_checkpoint_paths,
                      state.all_model_checkpoint_timestamps)) if state else {}
    keep = [p for p in self.manager.checkpoints if p != prefix]
    # With their timestamps: a CheckpointManager forgets listed paths that have none.
    # (TensorFlow 2 has no other way to drop one path from the list; its deprecation
    # notice, 6 lines, is not shown: the warning above is the one the user needs.)
    notice = quiet.DropMessages("From ", "update_checkpoint_state")
    quiet.tensorflow_logger().addFilter(notice)
    try:
      tf.compat.v1.train.update_checkpoint_state(
          self.directory, keep[-1] if keep else "", all_model_checkpoint_paths=keep,
          all_model_checkpoint_timestamps=[stamps.get(p, time.time()) for p in keep])
    finally:
      quiet.tensorflow_logger().removeFilter(notice)
    if not keep:
      tf.io.gfile.remove(os.path.join(self.directory, "checkpoint"))
    self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                              self.max_to_keep)
    return dest


def _hide_unrestored_value_warnings():
  """A checkpoint that does not fit is reported in one line (IncompatibleRun); without
  this, TensorFlow adds a warning for each value it could not restore when the restore's
  objects are collected (up to hundreds of lines after that line)."""
  quiet.tensorflow_logger().addFilter(quiet.DropMessages((
      "Value in checkpoint could not be found",
      "Detecting that an object or model or tf.train.Checkpoint is being deleted")))


def _first_line(e: Exception) -> str:
  text = getattr(e, "message", None) or str(e) or type(e).__name__
  return text.strip().splitlines()[0][:200]

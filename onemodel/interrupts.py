"""SIGTERM (a scheduler's preemption) and Ctrl-C: save at the step reached, then exit.

Multi-worker training uses TensorFlow's `PreemptionCheckpointHandler`: it agrees with
every worker on the step at which all of them save (the save is a collective), which a
per-process handler cannot do. Elsewhere a signal only sets a flag that the controller
reads between chunks of steps, because the handler does not fit there: it does not
support parameter-server training, is a no-op on GCP CPU machines, and probes the GCE
metadata server over HTTP when it starts
(tensorflow/python/distribute/failure_handling/failure_handling.py).
"""

import signal
from typing import Callable

import tensorflow as tf

from onemodel.errors import UserError


class Interrupted(UserError):
  """Training stopped on a signal after saving; the CLI exits with `exit_code`."""

  def __init__(self, message: str, exit_code: int):
    super().__init__(message)
    self.exit_code = exit_code


_EXIT = {"SIGTERM": 143, "SIGINT": 130}  # 128 + the signal's number, as shells report


class Interrupts:
  """Watches SIGTERM and SIGINT while training; `check(step)` saves and raises."""

  def __init__(self, save: Callable[[int], str], strategy=None, scratch_dir: str = ""):
    self.save, self.received = save, None
    self._handler, self._previous = None, {}
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
      self._handler = tf.distribute.experimental.PreemptionCheckpointHandler(
          # An empty checkpoint: the handler restores it when it starts, and onemodel
          # restores its own (with fallback past corrupt files); saving goes to `save`.
          strategy.cluster_resolver, tf.train.Checkpoint(),
          checkpoint_dir=scratch_dir,  # the handler's own bookkeeping only
          termination_config=tf.distribute.experimental.TerminationConfig(
              save_fn=save, exit_fn=self._exit_after_handler))
      signals = (signal.SIGINT,)
    else:
      signals = (signal.SIGTERM, signal.SIGINT)
    for s in signals:
      self._previous[s] = signal.signal(s, self._on_signal)

  def _on_signal(self, signum, frame):
    del frame
    if self.received:  # a second Ctrl-C: stop now, without saving
      raise KeyboardInterrupt
    self.received = signal.Signals(signum).name

  def check(self, step: int) -> None:
    """Between chunks: if a signal came, save at `step` and raise `Interrupted`."""
    if self._handler is not None:
      self._step = step
      self._handler.save_checkpoint_if_preempted(step)
    if self.received:
      path = self.save(step)
      raise Interrupted(f"stopped by {self.received} at step {step}; saved {path}; "
                        "run the same command again to resume", _EXIT[self.received])

  def _exit_after_handler(self):
    raise Interrupted(f"preempted (SIGTERM) at step {self._step}; checkpoint saved; "
                      "run the same command again to resume", _EXIT["SIGTERM"])

  def close(self) -> None:
    for s, previous in self._previous.items():
      signal.signal(s, previous)
    self._previous = {}


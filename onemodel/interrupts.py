"""SIGTERM (a scheduler's preemption) and Ctrl-C: save at the step reached, then exit.

A signal sets a flag that the controller reads between chunks of steps. Under
multi-worker training every worker must save at one step (the save is a collective), so
at each check the workers sum their flags in one all-reduce: a SIGTERM to any worker
stops all of them at the same step, whatever the platform.

TensorFlow's `PreemptionCheckpointHandler` agrees on the step too, but not everywhere:
it is a no-op on GCE CPU and TPU machines ("does not support usage with TPU or CPU
device on GCP"), watches the GCE metadata server instead of SIGTERM on GCE GPU machines,
so a GKE CPU pod was killed without a save, and does not support parameter-server
training (tensorflow/python/distribute/failure_handling/failure_handling.py). One
scalar all-reduce per chunk of steps is the price of not depending on it.
"""

import signal
from typing import Callable

import tensorflow as tf

from onemodel.errors import SIGNAL_EXIT, UserError


class Interrupted(UserError):
  """Training stopped on a signal after saving; the CLI exits with `exit_code`."""

  def __init__(self, message: str, exit_code: int):
    super().__init__(message)
    self.exit_code = exit_code


class Interrupts:
  """Watches SIGTERM and SIGINT while training; `check(step)` saves and raises."""

  def __init__(self, save: Callable[[int], str], strategy=None):
    self.save, self.received = save, None
    self._previous, self._signalled_anywhere = {}, None
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
      self._signalled_anywhere = tf.function(
          lambda flag: strategy.reduce(tf.distribute.ReduceOp.SUM,
                                       strategy.run(lambda: flag), axis=None),
          input_signature=[tf.TensorSpec([], tf.float32)])
    for s in (signal.SIGTERM, signal.SIGINT):
      self._previous[s] = signal.signal(s, self._on_signal)

  def _on_signal(self, signum, frame):
    del frame
    if self.received:  # a second Ctrl-C: stop now, without saving
      raise KeyboardInterrupt
    self.received = signal.Signals(signum).name

  def check(self, step: int) -> None:
    """Between chunks: if a signal came (to any worker), save at `step` and raise
    `Interrupted`. Under multi-worker training every worker must call it at every chunk
    (it is a collective)."""
    received, cluster = self.received, self._signalled_anywhere is not None
    if cluster:
      anywhere = float(self._signalled_anywhere(tf.constant(1.0 if received else 0.0)))
      received = received or ("SIGTERM" if anywhere else None)  # another worker's
    if received:
      path = self.save(step)
      what = (f"preempted ({received}) at step {step}; checkpoint saved" if cluster else
              f"stopped by {received} at step {step}; saved {path}")
      raise Interrupted(f"{what}; run the same command again to resume",
                        SIGNAL_EXIT[received])

  def close(self) -> None:
    for s, previous in self._previous.items():
      signal.signal(s, previous)
    self._previous = {}


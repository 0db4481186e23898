"""Synchronous training: a runner for the controller (controller.py) under one device,
Mirrored, multi-worker Mirrored or TPU strategies.

`steps_per_loop` steps per `tf.function` call, each step `strategy.run` of the
per-replica step on every replica. The runner trains with a `controller.RunnerState`
and nothing else of the trainer; its input iterators are trackable and go into the
checkpoint (`SyncRunner.checkpointed`), which is what makes resume exact.
"""

import threading

import numpy as np
import tensorflow as tf

from onemodel import distribute
from onemodel.controller import RunnerState


class ReplicaInputs(tf.Module):
  """This worker's input pipeline as a plain tf.data iterator, its batches dealt to the
  local replicas in turn (as `distribute_datasets_from_function` deals them).

  TensorFlow 2.21's distributed iterators are not trackable — `tf.train.Checkpoint`
  rejects them — but plain iterators are: their position, shuffle buffer and
  per-example augmentation seeds go into the checkpoint, so a resumed run reads on
  exactly where it stopped, under every synchronous strategy. Each worker reads its own
  shard (`distribute.worker_index`); replicas of one worker take consecutive batches, so
  one worker with k replicas sees the same examples per step as one device."""

  def __init__(self, state: RunnerState, problem):
    super().__init__(name=f"inputs_{problem.name}")
    s = state.strategy
    self.strategy, self.local = s, distribute.local_replicas(s)
    workers, index = distribute.worker_count(s), distribute.worker_index(s)
    ctx = tf.distribute.InputContext(num_input_pipelines=workers, input_pipeline_id=index,
                                     num_replicas_in_sync=s.num_replicas_in_sync)
    self.iterator = iter(state.dataset(ctx, problem, shard=(workers, index)))

  def next(self):
    if self.strategy.num_replicas_in_sync == 1:
      return next(self.iterator)
    # Called once per local replica, in replica order.
    return self.strategy.experimental_distribute_values_from_function(
        lambda ctx: next(self.iterator))


class SyncRunner:
  """Trains chunks of steps, each problem's run of steps in one call of its loop."""

  exact = True  # the input position is checkpointed
  hooks = ()

  def __init__(self, state: RunnerState):
    self.state, self.max_chunk = state, state.steps_per_loop
    self.iterators = [ReplicaInputs(state, p) for p in state.problems]
    self.checkpointed = {"inputs": {p.name: it for p, it in
                                    zip(state.problems, self.iterators)}}
    self.loops = [make_train_loop(state, i) for i in range(len(state.problems))]
    self.summed_loops = {}  # problems trained together -> their loop ('summed' updates)
    self._tracer = None  # the background thread of _trace_ahead

  def run(self, step: int, num_steps: int, signalled=None):  # chunks are short anyway
    sampler = self.state.sampler
    if self.state.summed_step_fn is not None:
      return num_steps, self._run_summed(step, num_steps)
    runs = sampler.runs(step, num_steps) if sampler else [(0, num_steps)]
    if self._tracer is None:
      self._trace_ahead(sorted(set(range(len(self.loops))) - {i for i, _ in runs}))
    return num_steps, [(i, {k: float(v) for k, v in self.loops[i](
        self.iterators[i], tf.constant(count)).items()}) for i, count in runs]

  def _run_summed(self, step, num_steps):
    """Every problem with a rate above zero in every step, one loop per such set."""
    results = []
    for rates, count in self.state.sampler.phases_in(step, num_steps):
      active = tuple(int(i) for i in np.flatnonzero(rates))
      if active not in self.summed_loops:
        self.summed_loops[active] = make_summed_loop(self.state, active)
      totals = self.summed_loops[active](
          tuple(self.iterators[i] for i in active), tf.constant(count),
          tf.constant(rates[list(active)], tf.float32))
      results += [(i, {k: float(v) for k, v in t.items()}) for i, t in zip(active, totals)]
    return results

  def close(self):
    """Waits for the background tracing (a process must not exit in the middle of it)."""
    if self._tracer is not None and self._tracer.is_alive():
      self._tracer.join()

  def _trace_ahead(self, indices):
    """Traces the loops of the problems the first chunk does not train in a background
    thread, while that chunk trains: each problem's loop is a graph of its own, and in
    a mixture whose first steps train one problem (a head start) the others' tracing
    (about 15 s of the README's six-minute first run) then overlaps training instead
    of following it. Tracing executes nothing, so the steps are the same; a loop still
    being traced when it is first called waits for it (the function's own lock). One
    replica only: MirroredStrategy's tracing starts threads of its own."""
    self._tracer = threading.Thread(target=self._trace, args=(indices,), daemon=True)
    if indices and self.state.strategy.num_replicas_in_sync == 1:
      self._tracer.start()

  def _trace(self, indices):
    for i in indices:
      try:
        self.loops[i].get_concrete_function(self.iterators[i], tf.constant(1))
      except Exception:  # pylint: disable=broad-except
        return  # the call itself traces again and raises where the user sees it


def make_train_loop(state: RunnerState, index: int):
  """A `tf.function(iterator, num_steps)` running `num_steps` synchronous steps of
  problem `index` in one call (no per-step Python) -> summed step statistics."""
  step_fn, keys, pruner, strategy = (state.step_fn(index), state.stat_keys, state.pruner,
                                     state.strategy)
  step, one_hot = state.step, tf.one_hot(index, len(state.problems), dtype=tf.int64)

  @tf.function
  def train_loop(iterator, num_steps):
    totals = {k: tf.constant(0.0) for k in keys}
    for _ in tf.range(num_steps):
      batch = iterator.next() if isinstance(iterator, ReplicaInputs) else next(iterator)
      stats = strategy.run(step_fn, (batch,))
      totals = {k: totals[k] + strategy.reduce(tf.distribute.ReduceOp.SUM, stats[k],
                                               axis=None) for k in keys}
      _after_update(step, pruner)
    state.problem_steps.assign_add(one_hot * tf.cast(num_steps, tf.int64))
    return totals

  return train_loop


def make_summed_loop(state: RunnerState, indices):
  """A `tf.function(iterators, num_steps, weights)` running `num_steps` updates, each on
  a batch of every problem in `indices` (TrainConfig.mixture_update='summed') -> summed
  statistics per problem, in `indices` order."""
  step_fn, keys, pruner, strategy = (state.summed_step_fn(indices), state.stat_keys,
                                     state.pruner, state.strategy)
  step = state.step
  counted = tf.reduce_sum(tf.one_hot(list(indices), len(state.problems), dtype=tf.int64),
                          axis=0)

  @tf.function
  def train_loop(iterators, num_steps, weights):
    totals = [{k: tf.constant(0.0) for k in keys} for _ in indices]
    for _ in tf.range(num_steps):
      batches = tuple(it.next() for it in iterators)
      stats = strategy.run(step_fn, (batches, weights))
      totals = [{k: t[k] + strategy.reduce(tf.distribute.ReduceOp.SUM, s[k], axis=None)
                 for k in keys} for t, s in zip(totals, stats)]
      _after_update(step, pruner)
    state.problem_steps.assign_add(counted * tf.cast(num_steps, tf.int64))
    return totals

  return train_loop


def _after_update(step, pruner):
  step.assign_add(1)
  if pruner is not None:  # Zhu & Gupta schedule, then keep pruned weights at zero
    pruner.update(step)
    pruner.apply()

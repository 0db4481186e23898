"""Asynchronous (parameter-server) training with `ClusterCoordinator`: a runner for the
same controller, hooks and per-replica step as synchronous training.

The coordinator (this process, the cluster's 'chief') schedules training functions on
the workers; each applies its own gradients to the variables on the parameter servers as
soon as it has them, and the controller joins them at every log, checkpoint or
evaluation boundary. Functions are scheduled a round (one per worker) at a time, one
round ahead of the round waited for, and SIGTERM is checked between rounds: a preempted
coordinator stops scheduling, joins what runs, and saves at the step reached (within
about two rounds of the signal). As in synchronous training a mixture draws the problem
of every step (`Sampler.problem_index`), not one per function. The step count is the
coordinator's own (steps scheduled, then joined): Keras' `optimizer.iterations`
undercounts under concurrent updates, so every scheduled function is told the steps it
trains and sets the optimizer's iteration (and with it the learning-rate schedule) from
them. Staleness, per step: how many updates other workers applied between this step
reading the weights and applying its gradients.
Each worker reads its own shard of the training data
(`tf.distribute.coordinator.experimental_get_current_worker_index`). A worker that dies
is tolerated: the coordinator re-schedules its functions elsewhere.
"""

import tensorflow as tf

from onemodel import distribute
from onemodel import hooks as hooks_lib
from onemodel.controller import RunnerState


class AsyncRunner:
  """Schedules functions of up to `steps_per_loop` steps, as many as the controller asks."""

  exact = False  # workers' input positions are not checkpointed
  checkpointed = {}

  def __init__(self, state: RunnerState):
    self.state = state
    self.max_chunk = state.train_steps  # the controller cuts chunks at its boundaries
    self.workers = workers = distribute.ps_worker_count()
    self.coordinator = tf.distribute.coordinator.ClusterCoordinator(state.strategy)
    self.staleness = hooks_lib.StalenessHook()
    self.hooks = [self.staleness]

    def per_worker_dataset_fn(problem):
      """A closure (no arguments: create_per_worker_dataset traces it)."""
      def fn(ctx):
        index = tf.distribute.coordinator.experimental_get_current_worker_index()
        return state.dataset(ctx, problem, shard=(workers, index))
      return lambda: state.strategy.distribute_datasets_from_function(fn)

    self.iterators = [iter(self.coordinator.create_per_worker_dataset(
        per_worker_dataset_fn(p))) for p in state.problems]
    self.worker_fns = [self._make_worker_fn(i) for i in range(len(state.problems))]

  def _make_worker_fn(self, index):
    state = self.state
    keys, step_fn, version, pruner = (state.stat_keys, state.step_fn(index), state.version,
                                      state.pruner)
    one_hot = tf.one_hot(index, len(state.problems), dtype=tf.int64)

    @tf.function
    def worker_fn(iterator, first_step, num_steps):
      totals = {k: tf.constant(0.0) for k in keys}
      stale = tf.constant(0, tf.int64)
      for j in tf.range(num_steps):
        step = first_step + tf.cast(j, tf.int64)
        state.iterations.assign(step)  # the learning-rate schedule's step
        seen = version.read_value()
        stats = state.strategy.run(step_fn, (next(iterator),))
        after = version.assign_add(1)
        stale += after - 1 - seen
        totals = {k: totals[k] + stats[k] for k in keys}
        if pruner is not None:
          pruner.update(step + 1)
          pruner.apply()
      state.problem_steps.assign_add(one_hot * tf.cast(num_steps, tf.int64))
      totals["stale"] = tf.cast(stale, tf.float32)
      totals["count"] = tf.cast(num_steps, tf.float32)
      return totals

    return worker_fn

  def run(self, step: int, num_steps: int, signalled=lambda: False):
    rounds, trained = [], 0
    plan = schedule(self.state.sampler, step, num_steps, self.state.steps_per_loop)
    for start in range(0, len(plan), self.workers):
      if len(rounds) >= 2:  # keep one round queued while waiting for the one before
        for _, remote in rounds[-2]:
          remote.fetch()
        if signalled():
          break
      rounds.append([(i, self.coordinator.schedule(
          self.worker_fns[i], args=(self.iterators[i], tf.constant(first, tf.int64),
                                    tf.constant(count)))) for i, first, count in
                     plan[start:start + self.workers]])
      trained += sum(count for _, _, count in plan[start:start + self.workers])
    self.coordinator.join()
    self.state.step.assign(step + trained)
    return trained, [(i, {k: float(v) for k, v in remote.fetch().items()})
                     for r in rounds for i, remote in r]


def schedule(sampler, step: int, num_steps: int, steps_per_loop: int):
  """Steps step..step+num_steps-1 as the functions to schedule: [(problem index, first
  step, count)], each step of the problem `sampler` (None: one problem) draws for it, in
  runs of at most `steps_per_loop` steps."""
  out = []
  for i, count in sampler.runs(step, num_steps) if sampler else [(0, num_steps)]:
    while count:
      n = min(count, steps_per_loop)
      out.append((i, step, n))
      step, count = step + n, count - n
  return out

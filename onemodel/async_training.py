"""Asynchronous (parameter-server) training with `ClusterCoordinator`.

The coordinator (this process, the cluster's 'chief') schedules training functions on
the workers; each applies its own gradients to the variables on the parameter servers as
soon as it has them. Same model, same per-replica step (`Trainer._step_fn`) as
synchronous training; only the outer loop differs. The step count is the coordinator's
own (steps scheduled and then joined) because Keras' `optimizer.iterations` undercounts
under async updates (STACK.md). Staleness, per step: how many updates other workers
applied between this step reading the weights and applying its gradients.
A worker that dies is tolerated: the coordinator re-schedules its functions elsewhere.
A mixture draws one problem per scheduled function (`steps_per_loop` steps).
"""

import functools

import tensorflow as tf

from onemodel import trainer as trainer_lib


def train(t: "trainer_lib.Trainer"):
  cfg = t.cfg
  coordinator = tf.distribute.coordinator.ClusterCoordinator(t.strategy)
  t._build_variables()
  t._restore_latest()
  start = int(t.step.numpy())

  def per_worker_dataset_fn(problem):
    return t.strategy.distribute_datasets_from_function(
        functools.partial(t._dataset, problem=problem))

  per_worker_iters = [iter(coordinator.create_per_worker_dataset(
      functools.partial(per_worker_dataset_fn, p))) for p in t.problems]
  version = t.version
  n = cfg.steps_per_loop

  def make_worker_fn(index):
    step_fn = t._step_fn(t.problems[index].name)

    @tf.function
    def worker_fn(iterator):
      total, count, stale = tf.constant(0.0), tf.constant(0.0), tf.constant(0, tf.int64)
      for _ in tf.range(n):
        seen = version.read_value()
        stats = t.strategy.run(step_fn, (next(iterator),))
        after = version.assign_add(1)
        stale += after - 1 - seen
        total += stats["loss_sum"]
        count += stats["tokens"]
      t.problem_steps.assign_add(tf.one_hot(index, len(t.problems), dtype=tf.int64) * n)
      return total, count, stale

    return worker_fn

  worker_fns = [make_worker_fn(i) for i in range(len(t.problems))]

  writer, eval_writer = t._writer("train"), t._writer("eval")
  progress = trainer_lib.Progress(cfg.train_steps, start)
  step, loss, pending = start, float("nan"), []
  if cfg.train_steps % n or start % n:
    print(f"note: parameter-server training schedules {n} steps at a time "
          "(TrainConfig.steps_per_loop); the step count is rounded up to a multiple")
  while step < cfg.train_steps:
    i = t.sampler.problem_index(step) if t.sampler else 0
    pending.append(coordinator.schedule(worker_fns[i], args=(per_worker_iters[i],)))
    step += n
    evaluate = cfg.eval_every_steps and step % cfg.eval_every_steps == 0 and \
        step < cfg.train_steps
    if step % cfg.log_every_steps == 0 or step >= cfg.train_steps or \
        step % cfg.checkpoint_every_steps == 0 or evaluate:
      coordinator.join()
      done = [r.fetch() for r in pending]
      pending = []
      total = sum(float(d[0]) for d in done)
      count = sum(float(d[1]) for d in done)
      stale = sum(int(d[2]) for d in done) / max(len(done) * n, 1)
      loss = total / max(count, 1.0)
      t.step.assign(step)
      mix, shown = t._mixture_scalars({}) if t.mixture else ({}, "")
      rate, _ = progress.update(step, loss, f" | staleness {stale:.2f}{shown}")
      t._log_scalars(writer, step, loss, rate, staleness=stale, **mix)
      if step % cfg.checkpoint_every_steps == 0 or step >= cfg.train_steps:
        t.manager.save(checkpoint_number=step)
      if evaluate:  # inline, on the coordinator, reading the parameter servers' weights
        t.evaluate(cfg.eval_role, step, eval_writer)
  coordinator.join()
  t.step.assign(step)
  return t._finish(step, loss, writer, eval_writer)

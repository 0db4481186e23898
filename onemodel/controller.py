"""The controller: the cadence of steps, log lines, checkpoints and evaluations.

One loop for synchronous and parameter-server training alike (Orbit's `Controller`):
a runner trains `n` steps and returns their summed statistics; the controller picks `n`
so that every chunk ends exactly on the next multiple of each interval — a checkpoint
every `checkpoint_every_steps`, an evaluation every `eval_every_steps` and a log line
every `log_every_steps`, whatever `steps_per_loop` is — and the logged loss averages
every step of the log interval. A non-finite loss stops the run before anything is
saved; signals are checked between chunks.
"""

import dataclasses
import math
from typing import Any, Callable, List, Optional, Protocol, Sequence, Tuple

import tensorflow as tf

from onemodel.checkpoints import NonFinite


@dataclasses.dataclass(frozen=True)
class RunnerState:
  """What a runner trains with, handed over by the trainer: the runner reads nothing
  else of it (sync_training.py, async_training.py).

  step_fn(i) is problem i's per-replica step (train_step.build_step_fn); dataset(ctx,
  problem, shard) one input pipeline's training batches; `iterations` is the
  optimizer's step counter (the learning-rate schedule's step); `version` counts the
  updates applied (parameter-server staleness); `pruner` is None without pruning."""
  strategy: tf.distribute.Strategy
  problems: Sequence[Any]
  sampler: Optional[Any]  # mixtures.Sampler, None for one problem
  steps_per_loop: int
  train_steps: int
  step_fn: Callable[[int], Callable]
  dataset: Callable[..., tf.data.Dataset]
  stat_keys: Tuple[str, ...]
  step: tf.Variable
  problem_steps: tf.Variable
  iterations: tf.Variable
  version: tf.Variable
  pruner: Optional[Any] = None
  # TrainConfig.mixture_update='summed': (problem indices) -> the step on all of them
  # (train_step.build_summed_step_fn); None: each step trains one drawn problem.
  summed_step_fn: Optional[Callable[[Tuple[int, ...]], Callable]] = None


class Runner(Protocol):
  max_chunk: int
  hooks: Sequence  # the runner's own instruments (e.g. staleness), besides the trainer's
  # Trackables whose state joins the checkpoint (input positions for exact resume); the
  # trainer adds them before it restores.
  checkpointed: dict

  def run(self, step: int, num_steps: int,
          signalled: Callable[[], bool]) -> Tuple[int, List[Tuple[int, dict]]]:
    """Trains steps step..step+num_steps-1 -> (steps trained, [(problem index, summed
    statistics)]). A runner may stop early once `signalled()` (a SIGTERM came): the
    controller then saves at the step reached."""


def next_boundary(step: int, total: int, intervals: Sequence[int]) -> int:
  """The first step after `step` that is a multiple of an interval, or `total`."""
  ends = [total] + [(step // n + 1) * n for n in intervals if n]
  return min(ends)


class Controller:

  def __init__(self, cfg, runner: Runner, hooks: Sequence, progress,
               save: Callable[[int], str], evaluate: Callable[[int], bool],
               log_scalars: Callable[[int, float, float, dict], None],
               interrupts=None, problem_names: Sequence[str] = ()):
    self.cfg, self.runner, self.hooks, self.progress = cfg, runner, list(hooks), progress
    self.save, self.evaluate, self.log_scalars = save, evaluate, log_scalars
    self.interrupts, self.names = interrupts, list(problem_names)

  def run(self, start: int) -> Tuple[int, float]:
    """Trains from step `start` to cfg.train_steps -> (last step, last logged loss)."""
    cfg, step, loss = self.cfg, start, float("nan")
    interval = [0.0, 0.0]  # loss_sum, tokens since the last log line
    evals = [cfg.eval_every_steps] if cfg.eval_every_steps else []
    while step < cfg.train_steps:
      end = next_boundary(step, cfg.train_steps,
                          [cfg.log_every_steps, cfg.checkpoint_every_steps] + evals)
      n, results = self.runner.run(step, min(self.runner.max_chunk, end - step),
                                   self._signalled)
      for index, stats in results:
        if not math.isfinite(stats["loss_sum"]):
          name = f" on {self.names[index]}" if len(self.names) > 1 else ""
          raise NonFinite(f"training diverged: non-finite loss{name} in steps "
                          f"{step + 1}..{step + n}; stopping without saving (the last "
                          "good checkpoint is kept; lower the learning rate or clip "
                          "gradients, then re-run from it)")
        interval[0] += stats["loss_sum"]
        interval[1] += stats["tokens"]
        self.progress.add(stats, index)
        for hook in self.hooks:
          hook.add(stats, index)
      step += n
      if step % cfg.log_every_steps == 0 or step == cfg.train_steps:
        loss = interval[0] / max(interval[1], 1.0)
        interval = [0.0, 0.0]
        scalars, shown = {}, ""
        for hook in self.hooks:
          s, text = hook.log(step)
          scalars.update(s)
          shown += text
        rate, extra = self.progress.update(step, loss, shown)
        self.log_scalars(step, loss, rate, {**extra, **scalars})
      if step % cfg.checkpoint_every_steps == 0 or step == cfg.train_steps:
        self.save(step)
      # The last step is evaluated too (a validation curve ends where training ends),
      # unless the final evaluation reads that very split anyway.
      # `evaluate` -> True: stop early (selection.Best's patience is exhausted).
      stop = False
      if step == cfg.train_steps:
        if evals and cfg.final_eval_role != cfg.eval_role:
          stop = self.evaluate(step)
      elif evals and step % cfg.eval_every_steps == 0:
        stop = self.evaluate(step)
      if stop:
        self.save(step)
        break
      if self.interrupts is not None:
        self.interrupts.check(step)
    return step, loss

  def _signalled(self) -> bool:
    return bool(self.interrupts is not None and self.interrupts.received)

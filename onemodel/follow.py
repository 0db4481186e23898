"""Continuous evaluation from another process: `onemodel-eval --follow`.

As Tensor2Tensor's continuous_eval, Model Garden's `continuous_eval` mode and T5X's
eval-only runs: a second process waits for each new checkpoint of a training run (running
or finished), evaluates it, writes metrics (OUTPUT_DIR/metrics_SPLIT_follow_stepN.json)
and TensorBoard summaries (OUTPUT_DIR/eval_follow), keeps the best checkpoint as the
trainer's `TrainConfig.select` would (selection.py; unless the run selects itself), and
ends once the trainer's final step (or its early stop) is evaluated.

It never blocks or alters the trainer: it takes no lock, reads only checkpoints the
trainer has listed as complete, and a checkpoint the trainer removed before it could be
read (`keep_checkpoints`) is skipped with a line. A follower started again skips the
steps it has already written metrics for."""

import os
import time
from typing import List

import tensorflow as tf

from onemodel import selection
from onemodel.errors import UserError

TAG = "follow"


def wait_for_run(output_dir: str, timeout_s: float, poll_s: float = 2.0) -> None:
  """Waits until OUTPUT_DIR/config.gin exists (the trainer writes it once started)."""
  deadline = time.time() + timeout_s
  while not tf.io.gfile.exists(os.path.join(output_dir, "config.gin")):
    if time.time() > deadline:
      raise UserError(f"--follow: no training run appeared in {output_dir} within "
                      f"{timeout_s:g} s (no config.gin)")
    time.sleep(poll_s)


def _step(path: str) -> int:
  return int(path.rsplit("-", 1)[1])


class Follower:
  """Evaluates each new checkpoint of trainer `t`'s run (built with training=False)."""

  def __init__(self, t, split: str, timeout_s: float, poll_s: float = 2.0,
               select: str = ""):
    self.t, self.split, self.timeout_s, self.poll_s = t, split, timeout_s, poll_s
    self.ckpt_dir = os.path.join(t.output_dir, "checkpoints")
    self.writer = tf.summary.create_file_writer(os.path.join(t.output_dir, "eval_follow"))
    self.best = None
    if t.cfg.select:
      print(f"the run keeps its own best checkpoint (TrainConfig.select="
            f"{t.cfg.select!r}); not selecting here", flush=True)
    else:
      select = select or ("mean_rank" if len(t.problems) > 1 else t.problem.metrics[0])
      self.best = selection.Best(selection.Selector(select, t.problems, split),
                                 t.output_dir, t.weights_checkpoint)

  def _evaluated(self) -> set:
    prefix = f"metrics_{self.split}_{TAG}_" + (f"{self.t.problems[-1].name}_"
                                               if self.t.mixture else "") + "step"
    return {int(n[len(prefix):-len(".json")]) for n in tf.io.gfile.listdir(self.t.output_dir)
            if n.startswith(prefix) and n.endswith(".json")}

  def _listed(self) -> List[str]:
    state = tf.train.get_checkpoint_state(self.ckpt_dir)
    return sorted(state.all_model_checkpoint_paths, key=_step) if state else []

  def _final_step(self) -> int:
    """The trainer's last step: train_steps, or where its patience stopped it."""
    stopped = selection.read_state(self.t.output_dir).get("stopped_at") \
        if self.t.cfg.select else None
    return stopped or self.t.cfg.train_steps

  def run(self) -> List[int]:
    """-> the steps evaluated, in order."""
    done, evaluated, last_new = self._evaluated(), [], time.time()
    while True:
      for path in self._listed():
        step = _step(path)
        if step in done:
          continue
        done.add(step)
        last_new = time.time()
        try:
          self.t.restore(path)
        except UserError:
          if tf.io.gfile.exists(path + ".index"):
            raise
          print(f"onemodel-eval: checkpoint {path} was removed by the trainer before it "
                "could be read (keep_checkpoints); skipped", flush=True)
          continue
        results = self.t.evaluate(self.split, step, self.writer, tag=TAG)
        self.writer.flush()
        if self.best is not None:
          self.best.update(step, results)
        evaluated.append(step)
      if done and max(done) >= self._final_step():
        return evaluated
      if time.time() - last_new > self.timeout_s:
        raise UserError(f"--follow: no new checkpoint in {self.ckpt_dir} for "
                        f"{self.timeout_s:g} s (last step seen: "
                        f"{max(done) if done else 'none'}); is the trainer running? "
                        "Raise --follow_timeout_s for runs that checkpoint less often")
      time.sleep(self.poll_s)

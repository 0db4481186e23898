"""Model selection: the best checkpoint by a validation metric, and early stopping.

`TrainConfig.select = 'PROBLEM/METRIC'` (or 'METRIC' for a run of one problem, or
'mean_rank' for a joint run: each evaluation's rank among the run's evaluations, per
problem by its first metric, averaged over the problems) is read at every periodic
evaluation (`eval_every_steps`, on the `eval_role` split, never on test). A better
value saves the model weights into OUTPUT_DIR/checkpoints/best/ (one checkpoint, never
displaced by `keep_checkpoints`) with best.json beside it. `TrainConfig.patience = N`
stops the run after N evaluations without a better value (exit 0, one line). The
history rides in best.json, so a resumed run compares against the same past.

As Model Garden's `best_checkpoint_export_subdir` / Keras' `EarlyStopping`; the metric
directions are those of the metrics (lower WER and loss, higher accuracy and BLEU)."""

import json
import os
from typing import Dict, List, Optional

import tensorflow as tf

from onemodel import fileio
from onemodel.errors import UserError

LOWER_IS_BETTER = ("wer", "cer", "loss", "loss_per_token", "perplexity")
EVALUATED_ALWAYS = ("loss_per_token", "perplexity")  # teacher-forced, every problem
MEAN_RANK = "mean_rank"
BEST_DIR = os.path.join("checkpoints", "best")


def higher_is_better(metric: str) -> bool:
  return metric not in LOWER_IS_BETTER


class Selector:
  """Which number decides, checked against the problems before anything runs."""

  def __init__(self, select: str, problems, eval_role: str):
    self.select, self.role = select, eval_role
    names = [p.name for p in problems]
    if select == MEAN_RANK:
      if len(problems) < 2:
        raise UserError("gin binding TrainConfig.select='mean_rank' ranks the problems of "
                        "a joint run; this run trains one: name its metric")
      self.targets = [(p.name, p.metrics[0] if p.metrics else "loss_per_token")
                      for p in problems]
      return
    problem, _, metric = select.rpartition("/")
    if not problem:
      if len(problems) > 1:
        raise UserError(f"gin binding TrainConfig.select={select!r}: this run trains "
                        f"{', '.join(names)}: write 'PROBLEM/{select}' or 'mean_rank'")
      problem = names[0]
    if problem not in names:
      raise UserError(f"gin binding TrainConfig.select={select!r}: problem {problem!r} is "
                      f"not trained here ({', '.join(names)})")
    p = problems[names.index(problem)]
    allowed = list(p.metrics) + [m for m in EVALUATED_ALWAYS if m not in p.metrics]
    if metric not in allowed:
      raise UserError(f"gin binding TrainConfig.select={select!r}: problem {problem} "
                      f"reports {', '.join(allowed)}")
    self.targets = [(problem, metric)]

  def values(self, results: Dict) -> Dict[str, float]:
    """One evaluation's results ({metric: v} or {problem: {metric: v}}) -> the numbers
    selection reads, {'PROBLEM/METRIC': value}."""
    out = {}
    for problem, metric in self.targets:
      r = results.get(problem, results) if isinstance(results.get(problem), dict) \
          else results
      out[f"{problem}/{metric}"] = float(r[metric])
    return out

  def score(self, history: List[dict], index: int) -> float:
    """Entry `index` of the history, as a number where lower is better."""
    if self.select != MEAN_RANK:
      (key, value), = history[index]["values"].items()
      return -value if higher_is_better(key.rsplit("/", 1)[1]) else value
    ranks = []
    for key in history[index]["values"]:
      sign = -1.0 if higher_is_better(key.rsplit("/", 1)[1]) else 1.0
      mine = sign * history[index]["values"][key]
      ranks.append(sum(sign * h["values"][key] < mine for h in history))
    return sum(ranks) / len(ranks)


class Best:
  """The best checkpoint of a run and the evaluations that chose it."""

  def __init__(self, selector: Selector, output_dir: str, checkpoint: tf.train.Checkpoint,
               patience: int = 0):
    self.selector, self.patience, self.output_dir = selector, patience, output_dir
    self.directory = os.path.join(output_dir, BEST_DIR)
    self.manager = tf.train.CheckpointManager(checkpoint, self.directory, max_to_keep=1)
    self.state = self._read()

  def _read(self) -> dict:
    return read_state(self.output_dir) or {
        "select": self.selector.select, "split": self.selector.role, "history": []}

  def resume(self, step: int) -> None:
    """Forgets evaluations after `step` (a resumed run repeats them)."""
    self.state["history"] = [h for h in self.state["history"] if h["step"] <= step]
    if self.state.get("stopped_at", 0) > step:
      del self.state["stopped_at"]

  def path(self) -> Optional[str]:
    """The best checkpoint in this run's directory, as `best_checkpoint` finds it (the
    manager's state file names it relatively). Not best.json's "checkpoint": the path it
    was saved at, another run's after the directory was copied or moved."""
    return self.manager.latest_checkpoint if self.state.get("checkpoint") else None

  @property
  def stopped_at(self) -> Optional[int]:
    return self.state.get("stopped_at")

  def update(self, step: int, results: Dict) -> bool:
    """Records one evaluation; saves the weights if it is the best so far -> whether
    the run should stop (patience exhausted)."""
    history = self.state["history"]
    history.append({"step": step, "values": self.selector.values(results)})
    scores = [self.selector.score(history, i) for i in range(len(history))]
    best = min(range(len(history)), key=lambda i: (scores[i], i))
    if best == len(history) - 1:
      path = self.manager.save(checkpoint_number=step)
      self.state.update(step=step, values=history[-1]["values"], checkpoint=path)
      print(f"best so far ({self.selector.select} on {self.selector.role}): step {step}, "
            + ", ".join(f"{k} {v:.4g}" for k, v in history[-1]["values"].items())
            + f"; saved to {path}", flush=True)
    stop = bool(self.patience) and len(history) - 1 - best >= self.patience
    if stop:
      self.state["stopped_at"] = step
    fileio.atomic_write_json(os.path.join(self.directory, "best.json"), self.state)
    if stop:
      print(f"onemodel: early stop at step {step}: {self.selector.select} has not "
            f"improved for {self.patience} evaluations (best at step "
            f"{history[best]['step']}, kept in {self.directory})", flush=True)
    return stop


def read_state(output_dir: str) -> dict:
  """A run's best.json ({} when it keeps no best checkpoint)."""
  path = os.path.join(output_dir, BEST_DIR, "best.json")
  return json.loads(fileio.read_text(path)) if tf.io.gfile.exists(path) else {}


def best_checkpoint(output_dir: str) -> str:
  """`--checkpoint=best` -> the run's best checkpoint."""
  directory = os.path.join(output_dir, BEST_DIR)
  path = tf.train.latest_checkpoint(directory) if tf.io.gfile.isdir(directory) else None
  if not path:
    raise UserError(f"no best checkpoint in {directory}: train with "
                    "TrainConfig.select (and eval_every_steps) to keep one")
  return path

"""Checkpoint averaging (as t2t-avg-all): the mean of the model weights of the last N
checkpoints, often a free gain over the last checkpoint alone."""

import os

import numpy as np
import tensorflow as tf

from onemodel.errors import UserError


def average_checkpoints(trainer, num_last: int, out_dir: str) -> str:
  """Averages the model variables of the run's last `num_last` checkpoints into a new
  checkpoint in `out_dir` and returns its path. It is written through the run's own
  `tf.train.Checkpoint` (optimizer state of the last checkpoint included), so every tool
  that restores a run's checkpoint restores it the same way."""
  paths = trainer.manager.checkpoints[-num_last:]
  if not paths:
    raise UserError(f"no checkpoint in {trainer.manager.directory}")
  if len(paths) < num_last:
    print(f"averaging the {len(paths)} checkpoints there are (asked for {num_last})")
  trainer.restore(paths[-1])
  variables = trainer.model.variables
  sums = [np.zeros(v.shape, np.float64) for v in variables]
  for path in paths:
    trainer.checkpoint.restore(path).expect_partial()
    for s, v in zip(sums, variables):
      s += v.numpy()
  for s, v in zip(sums, variables):
    v.assign((s / len(paths)).astype(v.numpy().dtype))
  step = int(os.path.basename(paths[-1]).split("-")[-1])
  manager = tf.train.CheckpointManager(trainer.checkpoint, out_dir, max_to_keep=1)
  return manager.save(checkpoint_number=step)

"""The progress line's numbers as TensorBoard scalars, read back the way benchmarks/ read
them (runlib.scalars)."""

import os
import sys

import keras
import tensorflow as tf

from onemodel.progress import scalar_logger

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
import runlib  # noqa: E402


def test_scalars_carry_loss_rate_learning_rate_and_extras(tmp_path):
  writer = tf.summary.create_file_writer(str(tmp_path / "train"))
  schedule = keras.optimizers.schedules.PiecewiseConstantDecay([5], [0.5, 0.25])
  optimizer = keras.optimizers.SGD(schedule)
  log = scalar_logger(writer, optimizer)
  log(3, 1.5, 2.0, {"loss/mnist": 0.75})
  optimizer.iterations.assign(7)  # past the boundary: the logged rate follows the step
  log(7, 1.25, 4.0, {})
  writer.flush()
  tags = ["loss", "steps_per_sec", "learning_rate", "loss/mnist"]
  assert runlib.scalars(str(tmp_path), tags) == {
      "loss": {3: 1.5, 7: 1.25}, "steps_per_sec": {3: 2.0, 7: 4.0},
      "learning_rate": {3: 0.5, 7: 0.25}, "loss/mnist": {3: 0.75}}

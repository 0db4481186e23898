"""The progress line's numbers as TensorBoard scalars (what benchmarks/ read back)."""

import glob
import os

import keras
import tensorflow as tf

from onemodel.progress import scalar_logger


def _read(logdir):
  out = {}
  for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for v in event.summary.value:
        out[(v.tag, event.step)] = float(tf.make_ndarray(v.tensor))
  return out


def test_scalars_carry_loss_rate_learning_rate_and_extras(tmp_path):
  writer = tf.summary.create_file_writer(str(tmp_path))
  schedule = keras.optimizers.schedules.PiecewiseConstantDecay([5], [0.5, 0.25])
  optimizer = keras.optimizers.SGD(schedule)
  log = scalar_logger(writer, optimizer)
  log(3, 1.5, 2.0, {"loss/mnist": 0.75})
  optimizer.iterations.assign(7)  # past the boundary: the logged rate follows the step
  log(7, 1.25, 4.0, {})
  writer.flush()
  assert _read(str(tmp_path)) == {
      ("loss", 3): 1.5, ("steps_per_sec", 3): 2.0, ("learning_rate", 3): 0.5,
      ("loss/mnist", 3): 0.75,
      ("loss", 7): 1.25, ("steps_per_sec", 7): 4.0, ("learning_rate", 7): 0.25}

"""Strategy selection: the only module that touches devices and cluster resolvers.

For now: one_device and mirrored (multi-worker, parameter-server and TPU come with the
distribution issue). The training loop is written against `tf.distribute.Strategy`, so
those plug in without changing it."""

import tensorflow as tf

from onemodel.errors import UserError

STRATEGIES = ("one_device", "mirrored")


def get_strategy(name: str = "") -> tf.distribute.Strategy:
  if not name:
    gpus = tf.config.list_logical_devices("GPU")
    name = "mirrored" if len(gpus) > 1 else "one_device"
  if name == "one_device":
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  raise UserError(f"unknown --strategy {name!r}; choose one of {', '.join(STRATEGIES)}")

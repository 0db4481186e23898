"""Dropout whose mask differs between the replicas of a tf.distribute strategy.

Keras 3 draws a dropout mask from its layer's `SeedGenerator`, whose state is one
variable. Under `MirroredStrategy` (and the multi-worker strategies) that variable is
mirrored, so every replica reads the same state and draws the same mask: N replicas train
on N batches with one shared mask, not N independent ones as N separate devices (or one
device on the whole batch) would. Here each replica folds its index in the sync group into
the drawn seed (`tf.random.experimental.stateless_fold_in`). With one replica the seed is
used as Keras uses it, so single-device masks, and runs resumed from earlier checkpoints,
are unchanged; the state variable (and so the checkpoint layout) is Keras's own.
"""

import keras
import tensorflow as tf


class Dropout(keras.layers.Dropout):
  """`keras.layers.Dropout` (without `noise_shape`), with a different mask on each
  replica."""

  def __init__(self, rate, **kwargs):
    if kwargs.get("noise_shape") is not None:
      raise ValueError("onemodel.dropout.Dropout takes no noise_shape")
    super().__init__(rate, **kwargs)

  def call(self, inputs, training=False):
    replicas = tf.distribute.get_replica_context()
    if not training or self.rate <= 0 or self.rate >= 1 or replicas is None \
        or replicas.num_replicas_in_sync == 1:
      return super().call(inputs, training=training)  # rate 1: zeros, as Keras
    # Keras's own draw (advances the shared state the same way on every replica), then
    # the replica's own stream of it. Keras casts its int64 state to int32 this way for
    # the stateless ops (keras/src/backend/tensorflow/random.py, _cast_seed).
    seed = tf.cast(tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1), tf.int32)
    seed = tf.random.experimental.stateless_fold_in(seed, replicas.replica_id_in_sync_group)
    return tf.nn.experimental.stateless_dropout(inputs, rate=self.rate, seed=seed)

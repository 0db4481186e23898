"""Conformance over every registered problem: a real batch matches the feature specs,
the loss is finite, and the train step runs under tf.function and XLA."""

import gin
import numpy as np
import pytest
import tensorflow as tf

from onemodel import data as data_lib
from onemodel import model as model_lib
from onemodel import registry

registry.load_plugins()
PROBLEMS = registry.PROBLEMS.names()


def _tiny():
  gin.parse_config_files_and_bindings(["gin/models/tiny.gin"], [])


@pytest.mark.parametrize("name", PROBLEMS)
def test_problem_conformance(name, data_dir, problems):
  _tiny()
  p = problems[name]
  vocab = data_lib.get_vocab(p, data_dir)
  batch = next(iter(data_lib.dataset(p, "train", data_dir, 4, training=True, vocab=vocab,
                                     seed=0)))
  # The batch matches the specs: static shapes, targets end in EOS (or are LM windows).
  assert batch["targets"].shape == (4, p.targets.length)
  assert batch["targets"].dtype == tf.int32
  if p.inputs is not None:
    x = batch["inputs"]
    if p.inputs.modality == "image":
      assert x.shape == (4,) + p.inputs.shape
    if p.inputs.modality == "text":
      assert x.shape == (4, p.inputs.length)
  assert int(tf.reduce_max(batch["targets"])) < model_lib.build(
      [p], {name: vocab}).target_embedding(name).vocab_size

  model = model_lib.build([p], {name: vocab})
  model(batch, problem=name)
  opt = tf.keras.optimizers.Adam(1e-3)
  opt.build(model.trainable_variables)

  def step(b):
    with tf.GradientTape() as tape:
      s, c = model_lib.token_loss(model(b, problem=name, training=True), b["targets"])
      loss = s / c
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  eager = float(step(batch))
  assert np.isfinite(eager)
  assert np.isfinite(float(tf.function(step)(batch)))
  assert np.isfinite(float(tf.function(step, jit_compile=True)(batch)))

"""Dropout under MirroredStrategy: each replica draws its own mask (Keras's Dropout draws
one mask for all of them), and one device draws exactly Keras's mask."""

import subprocess
import sys
import textwrap

from conftest import ROOT

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from onemodel import dropout as dropout_lib
    layer_cls = keras.layers.Dropout if sys.argv[1] == 'keras' else dropout_lib.Dropout
    strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
    with strategy.scope():
      layer = layer_cls(0.5, seed=7)

    @tf.function
    def step():
      return strategy.run(lambda: layer(tf.ones([4, 64]), training=True))

    masks = []
    for _ in range(2):
      masks.append([v.numpy() != 0 for v in strategy.experimental_local_results(step())])
    state = layer.seed_generator.state.value  # a MirroredVariable: one copy per replica
    states = [v.numpy() for v in state.values]
    one = tf.distribute.OneDeviceStrategy('/cpu:0')
    with one.scope():
      single = layer_cls(0.5, seed=7)
    one_device = one.run(lambda: single(tf.ones([4, 64]), training=True)).numpy() != 0
    reference = keras.layers.Dropout(0.5, seed=7)(tf.ones([4, 64]), training=True).numpy() != 0
    print('SAME_ACROSS_REPLICAS', [bool(np.array_equal(a, b)) for a, b in masks])
    print('SAME_ACROSS_STEPS', bool(np.array_equal(masks[0][0], masks[1][0])))
    print('KEPT', min(float(m.mean()) for pair in masks for m in pair),
          max(float(m.mean()) for pair in masks for m in pair))
    print('STATES_EQUAL', bool(np.array_equal(states[0], states[1])), states[0].tolist())
    print('ONE_DEVICE_IS_KERAS', bool(np.array_equal(one_device, reference)))
""")


def _run(which):
  out = subprocess.run([sys.executable, "-c", SCRIPT, which], cwd=ROOT, capture_output=True,
                       text=True, timeout=180)
  assert out.returncode == 0, out.stderr[-3000:]
  return dict(line.split(" ", 1) for line in out.stdout.splitlines()
              if line.split(" ", 1)[0].isupper())


def test_replicas_draw_different_masks_one_device_draws_keras_mask():
  keras_run = _run("keras")
  # The bug this layer exists for: Keras's Dropout gives both replicas one mask.
  assert keras_run["SAME_ACROSS_REPLICAS"] == "[True, True]", keras_run
  ours = _run("onemodel")
  assert ours["SAME_ACROSS_REPLICAS"] == "[False, False]", ours
  assert ours["SAME_ACROSS_STEPS"] == "False", ours
  low, high = (float(x) for x in ours["KEPT"].split())
  assert 0.3 < low and high < 0.7, ours  # a rate-0.5 mask on 256 values
  # The shared state advances once per call, the same on both replicas (a checkpoint
  # holds one value), and without a strategy the mask is Keras's own.
  assert ours["STATES_EQUAL"].startswith("True") and ours["STATES_EQUAL"].endswith(", 2]")
  assert ours["ONE_DEVICE_IS_KERAS"] == "True", ours

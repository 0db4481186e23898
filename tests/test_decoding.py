import gin
import numpy as np
import tensorflow as tf

from onemodel import decoding
from onemodel import model as model_lib
from onemodel import problem as problem_lib
from onemodel import vocab as vocab_lib


def _model():
  gin.parse_config_files_and_bindings(["gin/models/tiny.gin"], [])
  p = problem_lib.Problem(
      name="copy", builder=None, raw_subdir="", metrics=("accuracy",), to_raw=None,
      inputs=problem_lib.FeatureSpec("text", length=6, vocab=problem_lib.VocabSpec()),
      targets=problem_lib.FeatureSpec("text", length=6, vocab=problem_lib.VocabSpec()),
      splits={})
  vocab = type("V", (), {"vocab_size": 12})()
  return p, model_lib.build([p], {"copy": vocab})


def test_greedy_matches_teacher_forced_argmax():
  p, model = _model()
  batch = {"inputs": tf.constant([[4, 5, 6, 1, 0, 0], [7, 8, 1, 0, 0, 0]]),
           "targets": tf.zeros([2, 6], tf.int32)}
  ids = decoding.greedy(model, "copy", batch, 6).numpy()
  # Feeding the greedy output back, teacher-forced, reproduces each argmax up to EOS.
  logits = model({**batch, "targets": tf.constant(ids)}, problem="copy")
  argmax = tf.argmax(logits, -1).numpy()
  for row, am in zip(ids, argmax):
    n = len(decoding.strip_eos(row)) + (1 if vocab_lib.EOS_ID in row else 0)
    np.testing.assert_array_equal(row[:n], am[:n])


def test_greedy_compiles_with_xla():
  p, model = _model()
  batch = {"inputs": tf.constant([[4, 5, 6, 1, 0, 0]]), "targets": tf.zeros([1, 6], tf.int32)}
  eager = decoding.greedy(model, "copy", batch, 6).numpy()
  xla = tf.function(lambda b: decoding.greedy(model, "copy", b, 6), jit_compile=True)
  np.testing.assert_array_equal(xla(batch).numpy(), eager)

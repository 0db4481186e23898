import gin
import numpy as np
import tensorflow as tf

from onemodel import decoding
from onemodel import model as model_lib
from onemodel import problem as problem_lib
from onemodel import vocab as vocab_lib


_TRAINED = {}


def _model():
  """A tiny model trained briefly to copy its input, so its outputs end with EOS."""
  if "m" in _TRAINED:
    return _TRAINED["m"]
  gin.parse_config_files_and_bindings(["gin/models/tiny.gin"], [])
  p = problem_lib.Problem(
      name="copy", builder=None, raw_subdir="", metrics=("accuracy",), to_raw=None,
      inputs=problem_lib.FeatureSpec("text", length=6, vocab=problem_lib.VocabSpec()),
      targets=problem_lib.FeatureSpec("text", length=6, vocab=problem_lib.VocabSpec()),
      splits={})
  vocab = type("V", (), {"vocab_size": 12})()
  model = model_lib.build([p], {"copy": vocab})
  rng = np.random.default_rng(0)
  model({"inputs": tf.ones([1, 6], tf.int32), "targets": tf.ones([1, 6], tf.int32)},
        problem="copy")
  opt = tf.keras.optimizers.Adam(3e-3)
  opt.build(model.trainable_variables)

  @tf.function
  def step(b):
    with tf.GradientTape() as tape:
      s, c = model_lib.token_loss(model(b, problem="copy", training=True), b["targets"])
      loss = s / c
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  for _ in range(300):
    lengths = rng.integers(1, 5, size=32)
    seq = np.zeros([32, 6], np.int32)
    for r, n in enumerate(lengths):
      seq[r, :n] = rng.integers(3, 12, size=n)
      seq[r, n] = vocab_lib.EOS_ID
    loss = step({"inputs": tf.constant(seq), "targets": tf.constant(seq)})
  _TRAINED["m"] = (p, model)
  return p, model


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


def _batch():
  return {"inputs": tf.constant([[4, 5, 6, 1, 0, 0], [7, 8, 1, 0, 0, 0], [9, 1, 0, 0, 0, 0]]),
          "targets": tf.zeros([3, 6], tf.int32)}


def _first_eos_prefix(ids):
  return [decoding.strip_eos(r) for r in np.asarray(ids)]


def test_cached_greedy_equals_uncached():
  p, model = _model()
  batch = _batch()
  uncached = decoding.greedy(model, "copy", batch, 6).numpy()
  cached, _ = decoding.cached_greedy(model, "copy", batch, 6)
  assert all(vocab_lib.EOS_ID in row for row in uncached)  # the model learned to stop
  # Identical up to and including EOS (the uncached decoder keeps writing after it).
  assert _first_eos_prefix(cached) == _first_eos_prefix(uncached)
  assert all(vocab_lib.EOS_ID in row for row in cached.numpy())


def test_beam_of_one_equals_greedy():
  p, model = _model()
  batch = _batch()
  greedy, _ = decoding.cached_greedy(model, "copy", batch, 6)
  beams, _ = decoding.cached_beam(model, "copy", batch, 6, beam_size=1, alpha=0.0)
  assert _first_eos_prefix(beams[:, 0]) == _first_eos_prefix(greedy)


def test_beam_scores_sorted_and_better_than_greedy_logprob():
  p, model = _model()
  batch = _batch()
  _, greedy_lp = decoding.cached_greedy(model, "copy", batch, 6)
  seqs, scores = decoding.cached_beam(model, "copy", batch, 6, beam_size=4, alpha=0.0)
  assert seqs.shape == (3, 4, 6)
  s = scores.numpy()
  assert np.all(s[:, :-1] >= s[:, 1:] - 1e-6)
  assert np.all(s[:, 0] >= greedy_lp.numpy() - 1e-4)


def test_length_penalty_changes_the_choice():
  # Vocabulary: 0 pad, 1 EOS, 2 'a'. First step: EOS 0.55, 'a' 0.45; after 'a': EOS 0.9.
  # Raw log-probs prefer [EOS]; a strong length penalty prefers ['a', EOS].
  def logits_fn(prev, i, state):
    first = tf.math.log(tf.constant([[1e-9, 0.55, 0.45]]))
    later = tf.math.log(tf.constant([[1e-9, 0.9, 0.1]]))
    logits = tf.where(tf.equal(i, 0), first, later)
    return tf.tile(logits, [tf.shape(prev)[0], 1]), state

  def best(alpha):
    seqs, _ = decoding.beam_search(logits_fn, 1, 2, 4, alpha, {"x": tf.zeros([2, 1])})
    return decoding.strip_eos(seqs[0, 0].numpy())

  assert best(0.0) == []
  assert best(5.0) == [2]


def test_cached_decoders_compile_with_xla():
  p, model = _model()
  batch = _batch()
  eager, _ = decoding.cached_greedy(model, "copy", batch, 6)
  xla = tf.function(lambda b: decoding.cached_greedy(model, "copy", b, 6)[0],
                    jit_compile=True)
  np.testing.assert_array_equal(xla(batch).numpy(), eager.numpy())
  beam_eager = decoding.cached_beam(model, "copy", batch, 6, 3)[0].numpy()
  beam_xla = tf.function(lambda b: decoding.cached_beam(model, "copy", b, 6, 3)[0],
                         jit_compile=True)(batch).numpy()
  np.testing.assert_array_equal(beam_xla, beam_eager)


def test_sampling_with_top_k_one_is_greedy():
  p, model = _model()
  batch = _batch()
  greedy, _ = decoding.cached_greedy(model, "copy", batch, 6)
  sampled, _ = decoding.cached_greedy(model, "copy", batch, 6, temperature=1.0, top_k=1)
  np.testing.assert_array_equal(sampled.numpy(), greedy.numpy())


def test_decode_function_under_xla_equals_plain():
  """DecodeConfig.jit_compile (used by evaluation, onemodel-decode and the export)
  compiles the cached greedy and beam loops and gives the same outputs."""
  p, model = _model()
  rng = np.random.default_rng(3)
  src = rng.integers(3, 12, size=[4, 6]).astype(np.int32)
  src[:, 4:] = 0
  batch = {"inputs": tf.constant(src), "targets": tf.zeros([4, 6], tf.int32)}
  for method in ("greedy", "beam"):
    plain = decoding.decode_function(model, "copy", 6, decoding.DecodeConfig(method=method))
    xla = decoding.decode_function(model, "copy", 6,
                                   decoding.DecodeConfig(method=method, jit_compile=True))
    assert xla._jit_compile is True and not plain._jit_compile  # pylint: disable=protected-access
    a, b = plain(batch), xla(batch)
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
    np.testing.assert_allclose(a[1].numpy(), b[1].numpy(), rtol=1e-4, atol=1e-4)


def _markov_logits_fn(table, calls):
  """A random next-token table: logits depend on the previous token only (0 at the
  start). `calls` counts the search's steps."""
  table = tf.constant(table, tf.float32)

  def logits_fn(prev, i, state):
    calls.append(1)
    return tf.gather(table, prev), state
  return logits_fn


def test_best_only_beam_returns_the_full_search_best_in_fewer_steps():
  """`best_only` stops once no alive beam can beat the best finished hypothesis: the
  best sequence and score must equal those of the search run to its usual stop."""
  rng = np.random.default_rng(0)
  fewer = 0
  for trial, alpha in enumerate([0.0, 0.6, 1.0] * 14):
    table = rng.normal(0.0, 2.0, size=[7, 7])
    table[:, vocab_lib.PAD_ID] = -1e9
    table[:, vocab_lib.EOS_ID] += rng.uniform(-2.0, 1.0)
    full_calls, best_calls = [], []
    state = {"x": tf.zeros([3 * 4, 1])}
    full = decoding.beam_search(_markov_logits_fn(table, full_calls), 3, 4, 16, alpha, state)
    best = decoding.beam_search(_markov_logits_fn(table, best_calls), 3, 4, 16, alpha, state,
                                best_only=True)
    np.testing.assert_array_equal(best[0][:, 0].numpy(), full[0][:, 0].numpy(),
                                  err_msg=f"trial {trial}")
    np.testing.assert_allclose(best[1][:, 0].numpy(), full[1][:, 0].numpy(), rtol=1e-6)
    assert len(best_calls) <= len(full_calls)
    fewer += len(best_calls) < len(full_calls)
  assert fewer >= 10, fewer

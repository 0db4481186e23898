"""Large-batch optimizers (LAMB, LARS, Adafactor), the learning-rate scaling rule, and the
gradient-noise-scale estimator."""

import math

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from onemodel import noise_scale, optim
from onemodel.errors import UserError


def _one_step(opt, w0, g, steps=1):
  w = keras.Variable(np.array(w0, np.float32), name="kernel")
  opt.build([w])
  for _ in range(steps):
    opt.apply_gradients([(tf.constant(g, tf.float32), w)])
  return w.numpy()


# --- LAMB (Keras' implementation) ------------------------------------------------------

def test_lamb_trust_ratio_hand_computed():
  # Step 1: m_hat = g, v_hat = g^2, so with epsilon 0 the Adam update is sign(g) = [1, -1],
  # |update| = sqrt(2); trust ratio |w| / |update| = 5 / sqrt(2).
  opt = keras.optimizers.Lamb(learning_rate=0.1, epsilon=0.0)
  w = _one_step(opt, [[3.0, 4.0]], [[1.0, -2.0]])
  ratio = 5.0 / math.sqrt(2.0)
  np.testing.assert_allclose(w, [[3.0 - 0.1 * ratio, 4.0 + 0.1 * ratio]], rtol=1e-6)


def test_lamb_matches_paper_reference_over_steps():
  """Two steps against a numpy transcription of LAMB (Algorithm 2, weight decay 0)."""
  b1, b2, eps, lr = 0.9, 0.999, 1e-6, 0.01
  gs = [np.array([[0.5, -1.0, 2.0]]), np.array([[-0.3, 0.2, 1.0]])]
  w = np.array([[1.0, 2.0, -2.0]])
  m = v = 0.0
  for t, g in enumerate(gs, 1):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    r = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    w = w - lr * np.linalg.norm(w) / np.linalg.norm(r) * r
  opt = keras.optimizers.Lamb(lr, beta_1=b1, beta_2=b2, epsilon=eps)
  x = keras.Variable(np.array([[1.0, 2.0, -2.0]], np.float32))
  opt.build([x])
  for g in gs:
    opt.apply_gradients([(tf.constant(g, tf.float32), x)])
  np.testing.assert_allclose(x.numpy(), w, rtol=1e-5)


# --- LARS -------------------------------------------------------------------------------

def test_lars_trust_ratio_hand_computed():
  # |w| = 5, |g| = 1, wd = 0.1, eta = 0.001: local_lr = 0.001 * 5 / (1 + 0.1 * 5).
  opt = optim.Lars(learning_rate=1.0, momentum=0.9, weight_decay_rate=0.1, eta=0.001)
  w0, g = np.array([[3.0, 4.0]]), np.array([[0.6, 0.8]])
  local = 0.001 * 5.0 / 1.5
  assert float(opt.trust_ratio(tf.constant(g, tf.float32),
                               tf.constant(w0, tf.float32))) == pytest.approx(local)
  w = keras.Variable(w0.astype(np.float32), name="kernel")
  opt.build([w])
  opt.apply_gradients([(tf.constant(g, tf.float32), w)])
  v1 = local * (g + 0.1 * w0)
  w1 = w0 - v1
  np.testing.assert_allclose(w.numpy(), w1, rtol=1e-6)
  # Step 2: momentum carries v1; the ratio is recomputed from the new |w|.
  opt.apply_gradients([(tf.constant(g, tf.float32), w)])
  local2 = 0.001 * np.linalg.norm(w1) / (1.0 + 0.1 * np.linalg.norm(w1))
  w2 = w1 - (0.9 * v1 + local2 * (g + 0.1 * w1))
  np.testing.assert_allclose(w.numpy(), w2, rtol=1e-6)


def test_lars_skips_biases_and_excluded_names():
  opt = optim.Lars(learning_rate=0.5, momentum=0.0, weight_decay_rate=0.1, eta=0.001)
  bias = keras.Variable(np.array([1.0, 2.0], np.float32), name="bias")
  kernel = keras.Variable(np.ones([2, 2], np.float32), name="pos_table")
  opt.exclude_from_weight_decay(var_names=["pos_table"])
  opt.build([bias, kernel])
  opt.apply_gradients([(tf.constant([1.0, 1.0]), bias), (tf.ones([2, 2]), kernel)])
  np.testing.assert_allclose(bias.numpy(), [0.5, 1.5])  # plain SGD: w - lr * g
  np.testing.assert_allclose(kernel.numpy(), 0.5 * np.ones([2, 2]))


def test_lars_zero_weight_ratio_is_one():
  opt = optim.Lars(learning_rate=0.1, momentum=0.0, eta=0.001)
  r = opt.trust_ratio(tf.ones([2, 2]), tf.zeros([2, 2]))
  assert float(r) == 1.0


@pytest.mark.parametrize("name,cls", [("lamb", keras.optimizers.Lamb),
                                      ("lars", optim.Lars),
                                      ("adafactor", keras.optimizers.Adafactor)])
def test_named_optimizers_train_in_a_tf_function(name, cls):
  gin.bind_parameter("optimizer.name", name)
  gin.bind_parameter("learning_rate_schedule.warmup_steps", 1)
  opt, clipnorm = optim.make_optimizer(10, *optim.from_gin())
  assert isinstance(opt, cls) and clipnorm == 1.0
  dense = keras.layers.Dense(3, name="d")
  norm = keras.layers.LayerNormalization(name="norm")
  x = tf.random.normal([8, 4], seed=0)
  y = tf.random.normal([8, 3], seed=1)
  norm(dense(x))
  variables = dense.trainable_variables + norm.trainable_variables
  opt.exclude_from_weight_decay(var_names=["norm", "bias", "_pos"])  # as the trainer does
  opt.build(variables)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.square(norm(dense(x)) - y))
    opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  losses = [float(step()) for _ in range(6)]
  assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_unknown_optimizer_is_a_user_error():
  gin.bind_parameter("optimizer.name", "lion")
  with pytest.raises(UserError, match="lamb"):
    optim.make_optimizer(10, *optim.from_gin())


# --- learning-rate scaling rule -----------------------------------------------------

def test_scaled_learning_rate_rules():
  assert optim.scaled_learning_rate(1e-3, 2048, 256, "linear") == pytest.approx(8e-3)
  assert optim.scaled_learning_rate(1e-3, 2048, 256, "sqrt") == pytest.approx(
      1e-3 * math.sqrt(8))
  assert optim.scaled_learning_rate(1e-3, 2048, 0, "none") == 1e-3
  with pytest.raises(UserError, match="reference_batch"):
    optim.scaled_learning_rate(1e-3, 2048, 0, "linear")
  with pytest.raises(UserError, match="scale rule"):
    optim.scaled_learning_rate(1e-3, 2048, 256, "quadratic")


@pytest.mark.parametrize("decay", ["cosine", "constant", "rsqrt"])
def test_schedule_scales_peak_and_warms_up_from_base(decay):
  sched = optim.make_schedule(1000, optim.ScheduleConfig(
      learning_rate=1e-3, warmup_steps=100, decay=decay, scale_rule="linear",
      reference_batch=256, warmup_start="base"), effective_batch=1024)
  assert float(sched(0)) == pytest.approx(1e-3, rel=0.05)     # gradual warmup from base
  assert float(sched(100)) == pytest.approx(4e-3, rel=0.01)   # the scaled peak
  assert float(sched(50)) == pytest.approx(2.5e-3, rel=0.05)  # linear in between


def test_schedule_default_is_unchanged():
  sched = optim.make_schedule(1000, optim.ScheduleConfig(learning_rate=1e-3,
                                                         warmup_steps=100))
  assert float(sched(0)) == pytest.approx(0.0, abs=1e-9)
  assert float(sched(100)) == pytest.approx(1e-3, rel=1e-4)
  r = optim.WarmupRsqrt(1e-3, 100)
  for s in (0, 50, 99, 100, 400):  # same values as the former min(s/w, rsqrt(s/w)) form
    t = s + 1.0
    assert float(r(s)) == pytest.approx(1e-3 * min(t / 100, (t / 100) ** -0.5), rel=1e-5)


def test_optimizer_passes_effective_batch_to_the_schedule():
  gin.bind_parameter("learning_rate_schedule.scale_rule", "linear")
  gin.bind_parameter("learning_rate_schedule.reference_batch", 64)
  gin.bind_parameter("learning_rate_schedule.learning_rate", 1e-3)
  gin.bind_parameter("learning_rate_schedule.warmup_steps", 10)
  opt_cfg, schedule = optim.from_gin()
  opt, _ = optim.make_optimizer(100, opt_cfg, schedule, effective_batch=32 * 8)
  assert float(opt._learning_rate(10)) == pytest.approx(4e-3, rel=1e-3)  # peak x 4
  with pytest.raises(UserError):
    optim.make_optimizer(100, opt_cfg, schedule)  # scale rule without an effective batch


# --- gradient noise scale -------------------------------------------------------------

def test_noise_scale_estimates_are_unbiased_formulas():
  # E|G_B|^2 = |G|^2 + tr(S)/B exactly -> the estimates recover both.
  g2, tr = 4.0, 100.0
  small, big = g2 + tr / 4, g2 + tr / 32
  est_g2, est_tr = noise_scale.estimates(small, 4, big, 32)
  assert est_g2 == pytest.approx(g2) and est_tr == pytest.approx(tr)
  with pytest.raises(ValueError):
    noise_scale.estimates(small, 32, big, 4)


def test_noise_scale_recovers_known_b_simple_on_a_quadratic():
  """Per-example gradients of 0.5 (x - x*)^T H (x - x*) + eps_i . x at fixed x are
  G + eps_i with eps ~ N(0, A A^T): B_simple = tr(A A^T) / |G|^2 is known exactly.
  Micro-batches of b=4, accumulated over k=8 (B_big = 32), as the trainer would feed."""
  rng = np.random.default_rng(0)
  p, b, k = 20, 4, 8
  h = np.diag(rng.uniform(0.5, 2.0, p))
  x, x_star = rng.normal(size=p), np.zeros(p)
  grad = h @ (x - x_star)
  a = rng.normal(size=(p, p)) * 0.5
  true_b = np.trace(a @ a.T) / (grad @ grad)
  est = noise_scale.NoiseScale(decay=0.995)
  var_a, var_b = tf.Variable(x[:12]), tf.Variable(x[12:])   # two "layers"
  for step in range(1500):
    eps = rng.normal(size=(k, b, p)) @ a.T                  # [k, b, p]
    micro = grad + eps.mean(axis=1)                         # each micro-batch's mean grad
    full = micro.mean(axis=0)
    if step < 3:  # exercise squared_norm on a real gradient list once in a while
      with tf.GradientTape() as tape:
        lin = tf.concat([var_a, var_b], 0)
        loss = tf.reduce_sum(tf.constant(full) * lin)
      assert float(noise_scale.squared_norm(tape.gradient(loss, [var_a, var_b]))) == \
          pytest.approx(full @ full, rel=1e-6)
    small = np.mean(np.sum(micro ** 2, axis=1))             # mean over micro-batches
    est.update(small, b, full @ full, b * k)
  assert est.b_simple == pytest.approx(true_b, rel=0.1), (est.state(), true_b)
  assert est.g2 == pytest.approx(grad @ grad, rel=0.1)
  assert est.trace_sigma == pytest.approx(np.trace(a @ a.T), rel=0.1)
  again = noise_scale.NoiseScale.from_state(est.state())
  assert again.b_simple == est.b_simple


def test_noise_scale_before_updates_and_non_finite_input():
  est = noise_scale.NoiseScale()
  assert math.isnan(est.b_simple)
  est.update(float("inf"), 1, 1.0, 2)
  assert est.count == 0
  assert float(noise_scale.squared_norm([None, tf.constant([3.0, 4.0])])) == 25.0

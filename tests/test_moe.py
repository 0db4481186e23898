"""Mixture-of-experts FFN: capacity, dropped tokens, balance loss, backbone integration."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from onemodel import backbone as backbone_lib
from onemodel import moe
from onemodel.errors import UserError


def _layer(e=2, k=1, cf=1.0, d=4, f=8):
  return moe.MoEFeedForward(d, f, 0.0, num_experts=e, top_k=k, capacity_factor=cf)


def test_capacity_and_dropped_tokens_hand_case():
  layer = _layer(e=2, k=1, cf=1.0)
  # 6 tokens, capacity ceil(1 * 6 * 1.0 / 2) = 3; five prefer expert 0, one expert 1.
  probs = tf.constant([[.9, .1], [.8, .2], [.3, .7], [.6, .4], [.7, .3], [.55, .45]])
  cap = layer.expert_capacity(6)
  assert cap == 3
  slots, gates, st = layer.route(probs, tf.ones([6]), cap)
  # Tokens 0, 1, 3 fill expert 0 (slots 0, 1, 2); token 2 -> expert 1 slot 0 (= 3);
  # tokens 4 and 5 find expert 0 full: dropped (slot E*C = 6, gate 0).
  np.testing.assert_array_equal(slots.numpy()[0], [0, 1, 3, 2, 6, 6])
  np.testing.assert_allclose(gates.numpy()[0], [.9, .8, .7, .6, 0, 0], rtol=1e-6)
  assert float(st["dropped_tokens"]) == 2.0
  np.testing.assert_array_equal(st["expert_counts"].numpy(), [3, 1])
  # Padding is not routed and takes no capacity: token 0 masked -> only token 5 dropped.
  _, _, st = layer.route(probs, tf.constant([0., 1, 1, 1, 1, 1]), cap)
  assert float(st["dropped_tokens"]) == 1.0 and float(st["routed_tokens"]) == 5.0


def test_top2_capacity_hand_case():
  layer = _layer(e=3, k=2, cf=0.75)
  # 4 tokens, capacity ceil(2 * 4 * 0.75 / 3) = 2. First choices: 0, 0, 0, 1;
  # second choices: 1, 2, 1, 2. Expert 0 takes tokens 0, 1 (token 2's first choice is
  # dropped); second choices queue after all first choices: expert 1 has token 3 and
  # then token 0 (full, token 2 dropped again); expert 2 takes tokens 1 and 3.
  probs = tf.constant([[.5, .3, .2], [.6, .1, .3], [.7, .2, .1], [.2, .5, .3]])
  cap = layer.expert_capacity(4)
  assert cap == 2
  slots, gates, st = layer.route(probs, tf.ones([4]), cap)
  np.testing.assert_array_equal(slots.numpy(), [[0, 1, 6, 2], [3, 4, 6, 5]])
  assert float(st["dropped_tokens"]) == 1.0          # token 2 lost both choices
  assert float(st["dropped_assignments"]) == 2.0
  np.testing.assert_array_equal(st["expert_counts"].numpy(), [2, 2, 2])
  # GShard gates: the two kept choices renormalized to sum to 1.
  np.testing.assert_allclose(gates.numpy()[:, 0], [.5 / .8, .3 / .8], rtol=1e-6)


def test_layer_never_exceeds_capacity():
  layer = _layer(e=4, k=1, cf=1.0, d=8, f=16)
  x = tf.random.normal([4, 10, 8], seed=3) + tf.constant([3.0] + [0.0] * 7)  # skewed
  y = layer(x, training=True)
  assert y.shape == x.shape
  cap = layer.capacity
  assert cap == 10
  counts = layer.expert_counts.numpy()
  assert counts.max() <= cap
  choice = tf.argmax(layer.router(tf.reshape(x, [-1, 8])), -1).numpy()
  demand = np.bincount(choice, minlength=4)
  assert float(layer.dropped_tokens) == np.maximum(demand - cap, 0).sum()
  np.testing.assert_array_equal(counts, np.minimum(demand, cap))


def test_balance_loss_is_one_when_uniform_and_larger_when_skewed():
  e, n = 4, 16
  layer = _layer(e=e)
  # Perfectly balanced: token i prefers expert i mod E, and mean probabilities are uniform.
  probs = np.full([n, e], 0.1)
  probs[np.arange(n), np.arange(n) % e] = 0.7
  _, _, st = layer.route(tf.constant(probs, tf.float32), tf.ones([n]), n)
  assert float(st["aux_loss"]) == pytest.approx(1.0)
  # Skewed: every token prefers expert 0.
  skew = np.full([n, e], 0.1)
  skew[:, 0] = 0.7
  _, _, st = layer.route(tf.constant(skew, tf.float32), tf.ones([n]), n)
  assert float(st["aux_loss"]) == pytest.approx(e * 0.7)
  # Half skewed lies in between.
  mixed = np.concatenate([probs[: n // 2], skew[: n // 2]])
  _, _, st = layer.route(tf.constant(mixed, tf.float32), tf.ones([n]), n)
  assert 1.0 < float(st["aux_loss"]) < e * 0.7


@pytest.mark.parametrize("k", [1, 2])
def test_output_is_gated_sum_of_expert_ffns(k):
  layer = _layer(e=3, k=k, d=4, f=6)
  x = tf.random.normal([2, 5, 4], seed=7)
  y = layer(x, training=False).numpy().reshape(-1, 4)   # inference: nothing dropped
  assert float(layer.dropped_tokens) == 0.0
  xf = x.numpy().reshape(-1, 4)
  probs = tf.nn.softmax(layer.router(xf)).numpy()
  w1, b1 = layer.inner_kernel.numpy(), layer.inner_bias.numpy()
  w2, b2 = layer.outer_kernel.numpy(), layer.outer_bias.numpy()
  for t in range(xf.shape[0]):
    top = np.argsort(-probs[t])[:k]
    gates = probs[t, top] / (probs[t, top].sum() if k > 1 else 1.0)
    want = sum(g * (tf.nn.gelu(xf[t] @ w1[i] + b1[i]).numpy() @ w2[i] + b2[i])
               for g, i in zip(gates, top))
    np.testing.assert_allclose(y[t], want, rtol=1e-4, atol=1e-5)


MOE_CFG = backbone_lib.BackboneConfig(model_dim=16, num_heads=2, ffn_dim=32,
                                      num_encoder_layers=1, num_decoder_layers=2,
                                      dropout_rate=0.0, ffn="moe", num_experts=4,
                                      expert_top_k=2, capacity_factor=1.0,
                                      moe_aux_weight=0.01)


def test_backbone_with_moe_trains():
  bb = backbone_lib.Backbone(MOE_CFG)
  x = tf.random.normal([2, 5, 16], seed=1)
  mask = tf.ones([2, 5])
  y = tf.random.normal([2, 6, 16], seed=2)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      moe.reset_aux(bb)
      enc = bb.encode(x, mask, training=True)
      out = bb.decode(y, enc, mask, training=True)
      aux = moe.collect_aux(bb)
      loss = tf.reduce_mean(tf.square(out)) + aux["loss"]
    grads = tape.gradient(loss, bb.trainable_variables)
    return loss, aux, grads

  loss, aux, grads = step()
  assert aux["num_layers"] == 3 and np.isfinite(float(loss))
  assert 1.0 <= float(aux["balance_loss"]) <= 4.0
  assert float(aux["routed_tokens"]) == 10 + 2 * 12
  named = {v.path: g for v, g in zip(bb.trainable_variables, grads)}
  for path in ("encoder_0/ffn/router/kernel", "decoder_1/ffn/expert_inner_kernel",
               "decoder_1/ffn/expert_outer_bias"):
    g = [g for p, g in named.items() if p.endswith(path)]
    assert g and g[0] is not None and np.abs(g[0].numpy()).sum() > 0, path
  # The router learns from the balance loss alone too.
  with tf.GradientTape() as tape:
    moe.reset_aux(bb)
    bb.encode(x, mask, training=True)
    aux = moe.collect_aux(bb)
  router = bb.encoder_layers[0].ffn.router.kernel
  assert aux["num_layers"] == 1   # decoder layers not called since the reset
  assert np.abs(tape.gradient(aux["loss"], router).numpy()).sum() > 0


def test_padding_takes_no_expert_in_the_full_model():
  """Inside the whole model (text -> text), padding of the inputs and of the targets is
  not routed: it takes no capacity and is not counted in the statistics, and the real
  positions' logits do not depend on how much padding the batch carries."""
  from onemodel import model as model_lib
  from onemodel import problem as problem_lib
  spec = problem_lib.FeatureSpec("text", length=8, vocab=problem_lib.VocabSpec())
  p = problem_lib.Problem(name="copy", builder=None, raw_subdir="", metrics=("accuracy",),
                          to_raw=None, inputs=spec, targets=spec, splits={})
  cfg = dataclasses.replace(MOE_CFG, capacity_factor=0.0)
  model = model_lib.build([p], {"copy": type("V", (), {"vocab_size": 12})()}, cfg=cfg)
  inputs = np.array([[5, 6, 7, 1, 0, 0, 0, 0], [4, 1, 0, 0, 0, 0, 0, 0]], np.int32)
  targets = np.array([[5, 6, 1, 0, 0, 0, 0, 0], [4, 9, 8, 7, 1, 0, 0, 0]], np.int32)

  def run(extra):  # `extra` more padding columns on inputs and targets
    pad = lambda a: tf.constant(np.pad(a, [(0, 0), (0, extra)]))
    moe.reset_aux(model)
    logits = model({"inputs": pad(inputs), "targets": pad(targets)}, problem="copy",
                   training=True)
    return logits, moe.collect_aux(model)

  logits, aux = run(0)
  real_in, real_out = int((inputs > 0).sum()), int((targets > 0).sum())
  # 1 encoder layer, 2 decoder layers; top-2 routing.
  assert float(aux["routed_tokens"]) == real_in + 2 * real_out
  served = sum(float(tf.reduce_sum(l.expert_counts)) for l in moe.moe_layers(model))
  assert served == 2 * (real_in + 2 * real_out)
  padded, aux_padded = run(8)
  real = targets > 0
  np.testing.assert_allclose(padded.numpy()[:, :8][real], logits.numpy()[real], atol=1e-5)
  np.testing.assert_allclose(float(aux_padded["balance_loss"]), float(aux["balance_loss"]),
                             rtol=1e-5)


def test_moe_step_decoding_matches_full_decoding():
  bb = backbone_lib.Backbone(MOE_CFG)
  enc = tf.random.normal([2, 3, 16], seed=4)
  enc_mask = tf.ones([2, 3])
  y = tf.random.normal([2, 4, 16], seed=5)
  full = bb.decode(y, enc, enc_mask)
  caches, kvs = bb.init_cache(2, 4), bb.cross_kv(enc)
  for i in range(4):
    out, caches = bb.decode_step(y[:, i:i + 1], caches, i, kvs, enc_mask)
    np.testing.assert_allclose(out[:, 0], full[:, i], atol=1e-5)


def test_dense_default_unchanged_and_bad_ffn_rejected():
  bb = backbone_lib.Backbone(backbone_lib.BackboneConfig(model_dim=8, num_heads=2,
                                                         ffn_dim=16))
  assert isinstance(bb.encoder_layers[0].ffn, backbone_lib.FeedForward)
  assert moe.collect_aux(bb)["num_layers"] == 0
  with pytest.raises(UserError, match="BackboneConfig.ffn='sparse'"):
    backbone_lib.BackboneConfig(ffn="sparse")


def test_moe_compiles_with_xla_static_shapes():
  layer = _layer(e=4, k=2, cf=1.25, d=8, f=16)
  f = tf.function(lambda x: layer(x, training=True), jit_compile=True)
  y = f(tf.random.normal([2, 6, 8], seed=1))
  assert y.shape == (2, 6, 8) and layer.capacity == 8  # ceil(2 * 12 * 1.25 / 4)


def test_params_and_flops():
  cfg = backbone_lib.BackboneConfig(model_dim=16, ffn_dim=64, num_encoder_layers=1,
                                    num_decoder_layers=1, num_experts=8, expert_top_k=1)
  r = moe.params_and_flops(cfg)
  dense_ffn = 2 * 16 * 64 + 64 + 16
  assert r["dense"]["ffn_params"] == dense_ffn
  assert r["moe"]["ffn_params"] == 8 * dense_ffn + 16 * 8
  assert r["dense"]["ffn_flops_per_token"] == 4 * 16 * 64
  assert r["moe"]["ffn_flops_per_token"] == 4 * 16 * 64 + 2 * 16 * 8
  attn = 4 * 16 * 16 * 3
  assert r["dense"]["params"] == attn + 2 * dense_ffn
  assert r["ratio"]["ffn_params"] > 7.9 and r["ratio"]["flops_per_token"] < 1.1
  # The layer really has that many parameters.
  layer = moe.from_config(cfg)
  layer(tf.zeros([1, 2, 16]))
  assert sum(int(np.prod(v.shape)) for v in layer.trainable_variables) == \
      r["moe"]["ffn_params"]

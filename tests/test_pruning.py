"""Magnitude pruning: Zhu & Gupta schedule, block masks, masks surviving optimizer steps
and checkpoints."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from onemodel import backbone as backbone_lib
from onemodel import pruning

CFG = backbone_lib.BackboneConfig(model_dim=16, num_heads=2, ffn_dim=32,
                                  num_encoder_layers=1, num_decoder_layers=1,
                                  dropout_rate=0.0)


def _backbone(seed=0, cfg=CFG):
  tf.keras.utils.set_random_seed(seed)
  bb = backbone_lib.Backbone(cfg)
  x = tf.random.normal([2, 4, 16], seed=1)
  bb.decode(x, bb.encode(x, tf.ones([2, 4])), tf.ones([2, 4]))
  return bb


def test_schedule_is_zhu_gupta_cubic():
  cfg = pruning.PruningConfig(target_sparsity=0.8, begin_step=100, end_step=200,
                              frequency=10, initial_sparsity=0.1)
  s = lambda t: float(pruning.sparsity_at(t, cfg))
  assert s(50) == 0.0
  assert s(100) == pytest.approx(0.1)
  assert s(150) == pytest.approx(0.8 + (0.1 - 0.8) * 0.5 ** 3)
  assert s(200) == pytest.approx(0.8) and s(10_000) == pytest.approx(0.8)


def test_prunes_dense_kernels_only():
  bb = _backbone()
  pr = pruning.Pruner(bb, pruning.PruningConfig(target_sparsity=0.5))
  names = sorted(pr.sparsity_report())
  assert "total" in names
  names.remove("total")
  assert all(n.endswith("kernel") for n in names)       # no biases, norms, embeddings
  # 1 encoder self-attention + decoder self + cross attention (4 each) + 2 FFNs x 2.
  assert len(names) == 3 * 4 + 2 * 2


def test_reaches_scheduled_sparsity_unstructured():
  bb = _backbone()
  cfg = pruning.PruningConfig(target_sparsity=0.75, begin_step=2, end_step=12, frequency=5)
  pr = pruning.Pruner(bb, cfg)
  fired = []
  for step in range(15):
    fired.append(bool(pr.update(step)))
    pr.apply()
    if step == 7:  # halfway: s = 0.75 (1 - 0.5^3)
      for name, s in pr.sparsity_report().items():
        assert s == pytest.approx(0.75 * (1 - 0.125), abs=0.01), name
  assert [i for i, f in enumerate(fired) if f] == [2, 7, 12]
  for name, s in pr.sparsity_report().items():
    assert s == pytest.approx(0.75, abs=0.005), name
  for v, m in pr._pairs():
    assert (v.numpy()[m.numpy() == 0] == 0).all()


@pytest.mark.parametrize("block", [(1, 4), (4, 4)])
def test_block_masks_are_blockwise_and_drop_lowest_norm_blocks(block):
  rng = np.random.default_rng(0)
  w = rng.normal(size=(8, 16)).astype(np.float32)
  mask = pruning.magnitude_mask(w, 0.5, block, "l2").numpy()
  br, bc = block
  blocks = mask.reshape(8 // br, br, 16 // bc, bc)
  assert (blocks.min(axis=(1, 3)) == blocks.max(axis=(1, 3))).all()   # constant per block
  assert mask.mean() == pytest.approx(0.5)
  norms = np.sqrt((w.reshape(8 // br, br, 16 // bc, bc) ** 2).sum(axis=(1, 3)))
  kept = blocks[:, 0, :, 0] == 1
  assert norms[kept].min() > norms[~kept].max()
  l1 = pruning.magnitude_mask(w, 0.5, block, "l1").numpy()
  l1_norms = np.abs(w.reshape(8 // br, br, 16 // bc, bc)).sum(axis=(1, 3))
  kept1 = l1.reshape(8 // br, br, 16 // bc, bc)[:, 0, :, 0] == 1
  assert l1_norms[kept1].min() > l1_norms[~kept1].max()


def test_block_pruning_of_a_backbone_and_uneven_edges():
  bb = _backbone()
  pr = pruning.Pruner(bb, pruning.PruningConfig(target_sparsity=0.5, begin_step=0,
                                                end_step=1, frequency=1,
                                                block_shape=(4, 4)))
  pr.update(1)
  pr.apply()
  for name, s in pr.sparsity_report().items():
    assert s == pytest.approx(0.5), name
  # A 6 x 6 kernel with 4 x 4 blocks: 4 blocks (edge ones smaller), 2 of them pruned.
  mask = pruning.magnitude_mask(np.ones([6, 6], np.float32), 0.5, (4, 4)).numpy()
  assert mask.shape == (6, 6) and (mask[:4, :4] == mask[0, 0]).all()


def test_masked_weights_stay_zero_after_adam_steps_and_checkpoint(tmp_path):
  bb = _backbone(seed=0)
  cfg = pruning.PruningConfig(target_sparsity=0.6, begin_step=0, end_step=1, frequency=1)
  pr = pruning.Pruner(bb, cfg)
  opt = keras.optimizers.Adam(0.05)
  variables = bb.trainable_variables
  opt.build(variables)
  x = tf.random.normal([2, 4, 16], seed=3)

  @tf.function
  def train_step(step):
    with tf.GradientTape() as tape:
      out = bb.decode(x, bb.encode(x, tf.ones([2, 4])), tf.ones([2, 4]))
      loss = tf.reduce_mean(tf.square(out - 1.0))
    opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
    pr.update(step)   # in-graph schedule (tf.cond)
    pr.apply()
    return loss

  for step in range(4):
    train_step(tf.constant(step, tf.int64))
  pairs = pr._pairs()
  for v, m in pairs:
    assert (v.numpy()[m.numpy() == 0] == 0).all()
    assert (m.numpy() == 0).mean() == pytest.approx(0.6, abs=0.01)
  # Adam does move the masked weights (momentum): `apply` is what keeps them at zero.
  opt.apply_gradients([(tf.ones_like(v), v) for v in variables])
  assert any((v.numpy()[m.numpy() == 0] != 0).any() for v, m in pairs)
  pr.apply()

  # NB: the weights are checkpointed as a variable list: in Keras 3.15 a Python list of
  # layers (Backbone.encoder_layers) is not a checkpoint dependency of its layer.
  ckpt = tf.train.Checkpoint(weights=list(bb.trainable_variables), pruner=pr)
  path = ckpt.save(str(tmp_path / "ckpt"))
  saved = {k: m.numpy() for k, m in pr.masks.items()}
  names = tf.train.list_variables(path)
  assert sum("pruner/masks" in n for n, _ in names) == len(saved)

  bb2 = _backbone(seed=5)                                  # different weights
  pr2 = pruning.Pruner(bb2, cfg)
  tf.train.Checkpoint(weights=list(bb2.trainable_variables),
                      pruner=pr2).restore(path).assert_consumed()
  for k, m in pr2.masks.items():
    np.testing.assert_array_equal(m.numpy(), saved[k])
  for (v, m), (v2, _) in zip(pairs, pr2._pairs()):
    np.testing.assert_array_equal(v.numpy(), v2.numpy())
    assert (v2.numpy()[m.numpy() == 0] == 0).all()
  # After the schedule, masks no longer change: a later update keeps them.
  assert not bool(pr2.update(100))
  for k, m in pr2.masks.items():
    np.testing.assert_array_equal(m.numpy(), saved[k])


def test_moe_experts_are_prunable_and_default_is_off():
  cfg = backbone_lib.BackboneConfig(model_dim=8, num_heads=2, ffn_dim=16,
                                    num_encoder_layers=1, num_decoder_layers=0,
                                    dropout_rate=0.0, ffn="moe", num_experts=2)
  bb = backbone_lib.Backbone(cfg)
  bb.encode(tf.random.normal([1, 3, 8]), tf.ones([1, 3]))
  names = [v.path for v in pruning.prunable_weights(bb)]
  assert any(n.endswith("expert_inner_kernel") for n in names)
  assert not any("router" in n for n in names)
  assert pruning.maybe_pruner(bb) is None                  # target_sparsity 0: off
  with pytest.raises(ValueError):
    pruning.PruningConfig(target_sparsity=0.5, begin_step=10, end_step=5)

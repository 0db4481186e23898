import numpy as np
import tensorflow as tf

from onemodel import backbone as backbone_lib

CFG = backbone_lib.BackboneConfig(model_dim=16, num_heads=2, ffn_dim=32,
                                  num_encoder_layers=2, num_decoder_layers=2,
                                  dropout_rate=0.0)


def test_encoder_ignores_padding():
  bb = backbone_lib.Backbone(CFG)
  x = tf.random.normal([2, 5, 16], seed=1)
  mask = tf.constant([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], tf.float32)
  out = bb.encode(x, mask)
  # Changing the padded positions must not change the real ones.
  x2 = tf.concat([x[:, :3], tf.random.normal([2, 2, 16], seed=2) * 10], axis=1)
  out2 = bb.encode(x2, mask)
  np.testing.assert_allclose(out[0, :3], out2[0, :3], atol=1e-5)
  assert not np.allclose(out[1, 3:], out2[1, 3:])


def test_decoder_is_causal_and_uses_encoder():
  bb = backbone_lib.Backbone(CFG)
  enc = tf.random.normal([1, 4, 16], seed=3)
  enc_mask = tf.ones([1, 4])
  y = tf.random.normal([1, 6, 16], seed=4)
  out = bb.decode(y, enc, enc_mask)
  y2 = tf.concat([y[:, :3], tf.random.normal([1, 3, 16], seed=5)], axis=1)
  out2 = bb.decode(y2, enc, enc_mask)
  np.testing.assert_allclose(out[:, :3], out2[:, :3], atol=1e-5)
  out3 = bb.decode(y, enc * 2.0, enc_mask)
  assert not np.allclose(out, out3)


def test_decoder_without_encoder_is_a_causal_language_model():
  bb = backbone_lib.Backbone(CFG)
  y = tf.random.normal([2, 7, 16], seed=6)
  out = bb.decode(y)
  assert out.shape == (2, 7, 16)
  assert np.isfinite(out.numpy()).all()
  # Position t sees positions <= t only: changing position 4 leaves 0-3 as they were
  # and changes 4-6.
  y2 = tf.concat([y[:, :4], y[:, 4:5] * -3.0, y[:, 5:]], axis=1)
  out2 = bb.decode(y2)
  np.testing.assert_allclose(out[:, :4], out2[:, :4], atol=1e-5)
  assert not np.allclose(out[:, 4:], out2[:, 4:], atol=1e-3)

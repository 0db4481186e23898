import pytest

from onemodel import backbone, throughput


def test_flops_of_a_tiny_config_by_hand():
  cfg = backbone.BackboneConfig(model_dim=4, num_heads=1, ffn_dim=8, num_encoder_layers=1,
                                num_decoder_layers=2)
  shapes = throughput.batch_shapes(3, 2, 5)  # S=3, T=2, B=5
  shapes = {k: float(v) for k, v in shapes.items()}
  # Encoder layer: 4*4*4 + 2*4*8 = 128 weights; decoder layer: 2*64 + 64 = 192.
  enc = 6 * 128 * 1 * (5 * 3)
  dec = 6 * 192 * 2 * (5 * 2)
  attn = 6 * 2 * 2 * 4 * (1 * 5 * 3 * 3 + 2 * (5 * 2 * 2 + 5 * 2 * 3))
  softmax = 6 * 4 * 10 * (5 * 2)
  assert throughput.step_flops(cfg, shapes, vocab_size=10) == enc + dec + attn + softmax


def test_language_model_has_no_cross_attention():
  cfg = backbone.BackboneConfig(model_dim=4, num_heads=1, ffn_dim=8, num_encoder_layers=1,
                                num_decoder_layers=1)
  shapes = {"dec_tokens": 6.0, "dec_attn": 18.0}  # B=2, T=3, no encoder
  expected = 6 * (64 + 64) * 6 + 6 * 2 * 2 * 4 * 18 + 6 * 4 * 7 * 6
  assert throughput.step_flops(cfg, shapes, vocab_size=7) == expected


def test_peak_probe_is_positive_and_plausible():
  gflops = throughput.measure_peak_gflops(n=256, seconds=0.3)
  assert 0.1 < gflops < 1e5

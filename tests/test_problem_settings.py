"""One problem's own adapter settings in a joint model: gin bindings scoped by the
problem's name (`sst2/TextConfig.ngram_widths = (3, 5, 7)`) reach that problem's input
layer and input pipeline; the other problems keep the unscoped bindings. Without this a
joint model of SST-2 and Multi30k could only give both the classifier's n-gram input or
neither (TextConfig is model-wide)."""

import gin
import numpy as np
import pytest
import tensorflow as tf

from onemodel import adapters
from onemodel import backbone as backbone_lib
from onemodel import data as data_lib
from onemodel import model as model_lib
from onemodel import vocab as vocab_lib
from onemodel.adapters import text as text_lib
from onemodel.errors import UserError

TEXT = "the quick brown fox jumps over the lazy dog " * 2


def _settings(*bindings):
  gin.parse_config(list(bindings))
  return adapters.ModalityConfigs.from_gin()


def test_scoped_bindings_override_for_their_problem_only(problems):
  cfg = _settings("TextConfig.token_dropout = 0.1",
                  "sst2/TextConfig.ngram_widths = (3, 5)",
                  "sst2/TextConfig.ngram_pool = True",
                  "fsdd/SpeechConfig.time_mask = 7")
  assert [name for name, _ in cfg.overrides] == ["fsdd", "sst2"]
  sst2 = cfg.for_problem("sst2")
  assert sst2.text.ngram_widths == (3, 5) and sst2.text.ngram_pool
  assert sst2.text.token_dropout == 0.1  # unscoped bindings still apply
  assert sst2.speech.time_mask == adapters.speech.SpeechConfig().time_mask
  assert cfg.for_problem("fsdd").speech.time_mask == 7
  m30k = cfg.for_problem("multi30k_en_de")
  assert m30k.text.ngram_widths == () and m30k.text.token_dropout == 0.1
  assert m30k == cfg.for_problem("mnist") and m30k.overrides == ()
  assert cfg.for_problem("sst2").for_problem("sst2") == sst2  # idempotent
  # No scoped binding: no overrides, every problem reads the shared settings.
  gin.clear_config()
  plain = _settings("TextConfig.ngram_widths = (3,)")
  assert plain.overrides == () and plain.for_problem("sst2").text.ngram_widths == (3,)


def test_a_scope_that_names_no_problem_is_one_error(problems):
  """gin accepts `sts2/TextConfig...` and would never apply it: a silent no-op."""
  with pytest.raises(UserError, match=r"gin binding sts2/TextConfig.ngram_pool = True: "
                     r"'sts2' is not a registered problem .*registered: .*sst2"):
    _settings("sts2/TextConfig.ngram_pool = True")
  gin.clear_config()
  with pytest.raises(UserError, match="'joint/sst2' is not a registered problem"):
    _settings("joint/sst2/ImageConfig.patch_size = 4")


def test_model_and_input_pipeline_use_each_problems_own_settings(problems):
  cfg = _settings("sst2/TextConfig.ngram_widths = (3,)",
                  "sst2/TextConfig.token_dropout = 0.5")
  sst2, m30k = problems["sst2"], problems["multi30k_en_de"]
  vocab = vocab_lib.CharVocab.train([TEXT])
  model = model_lib.build([sst2, m30k], {"sst2": vocab, "multi30k_en_de": vocab},
                          cfg=backbone_lib.BackboneConfig(model_dim=16, num_heads=2,
                                                          ffn_dim=32),
                          modality_cfg=cfg)
  assert isinstance(model.input_adapters["sst2"], text_lib.NgramTokenInput)
  assert not isinstance(model.input_adapters["multi30k_en_de"], text_lib.NgramTokenInput)

  def inputs(p, training):
    raw = {"inputs": tf.constant(TEXT),
           "targets": tf.constant(1, tf.int64) if p is sst2 else tf.constant(TEXT)}
    return data_lib.example_features(p, raw, vocab, training=training,
                                     seed=tf.constant([3, 7], tf.int64),
                                     modality_cfg=cfg)["inputs"].numpy()

  unk = vocab_lib.UNK_ID
  assert np.count_nonzero(inputs(sst2, True) == unk) > np.count_nonzero(
      inputs(sst2, False) == unk)  # SST-2's scoped word dropout
  np.testing.assert_array_equal(inputs(m30k, True), inputs(m30k, False))  # none

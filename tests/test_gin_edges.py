"""gin is read at the edges only (issue #12): the command line, trainer construction and
the testing kit resolve `ImageConfig` / `SpeechConfig` into `adapters.ModalityConfigs`;
the adapters, the input pipeline and the model take those values and never read gin.
Likewise `DecodeConfig` (`decoding.from_gin()` at the edges, evaluation takes a value),
and the optimizer, its learning-rate schedule, pruning and precision (`optim.from_gin()`,
`pruning.from_gin()`, `precision.from_gin()`; the builders take values)."""

import os

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT
from onemodel import adapters
from onemodel import data as data_lib
from onemodel import decoding
from onemodel import evaluation
from onemodel import model as model_lib
from onemodel import optim
from onemodel import precision
from onemodel import problem as problem_lib
from onemodel import pruning
from onemodel import trainer as trainer_lib
from onemodel.adapters import image
from onemodel.adapters import speech


@gin.configurable("gin_edges_unreadable")
def _unreadable():
  raise AssertionError("library code read a gin binding (ImageConfig, SpeechConfig or "
                       "DecodeConfig)")


# Bindings that fail when anything reads them, even a call passing every field (gin
# evaluates a binding's reference before the caller's arguments override it).
UNREADABLE = [f"ImageConfig.{k} = @gin_edges_unreadable()"
              for k in ("patch_size", "stem", "stem_channels", "random_shift")] + \
             [f"SpeechConfig.{k} = @gin_edges_unreadable()"
              for k in ("num_mels", "hop_ms", "conv_channels", "freq_mask", "time_mask")] + \
             [f"DecodeConfig.{k} = @gin_edges_unreadable()" for k in ("method", "beam_size")] + \
             [f"TextConfig.{k} = @gin_edges_unreadable()"
              for k in ("token_dropout", "ngram_widths", "input_positions")]
LABEL = problem_lib.FeatureSpec("label", length=2, class_names=("a", "b"))
IMAGE = problem_lib.FeatureSpec("image", shape=(28, 28, 1))
SPEECH = problem_lib.FeatureSpec("speech", length=4000, sample_rate=8000)


def _problem(name, inputs):
  return problem_lib.Problem(name=name, builder=None, raw_subdir="", splits={},
                             inputs=inputs, targets=LABEL, metrics=(), to_raw=None)


def _wav():
  return tf.constant((np.sin(np.arange(3000) * 0.05) * 8000).astype(np.int16))


def test_adapters_read_no_gin():
  """Called without settings, the adapters use the dataclass defaults, whatever gin
  binds (before issue #12 they called ImageConfig()/SpeechConfig() and read it)."""
  gin.parse_config(UNREADABLE)
  seed = tf.constant([1, 2], tf.int64)
  img = tf.cast(tf.random.uniform([28, 28, 1], 0, 255, tf.int32), tf.uint8)
  mod = adapters.get_modality("image")
  assert mod.input_layer(IMAGE, 0, 16).rows == 28 // image.ImageConfig().patch_size
  shifted = mod.features(img, IMAGE, None, training=True, seed=seed)[""]
  np.testing.assert_array_equal(shifted, img)  # random_shift defaults to 0
  mod = adapters.get_modality("speech")
  feats = mod.features(_wav(), SPEECH, None, training=True, seed=seed)
  assert feats[""].shape[-1] == speech.SpeechConfig().num_mels
  assert mod.input_layer(SPEECH, 0, 16).conv1.filters == speech.SpeechConfig().conv_channels
  coarse = problem_lib.FeatureSpec("speech", length=4000, sample_rate=8000,
                                   front_end={"num_mels": 40})
  assert speech.settings(coarse) == speech.SpeechConfig(num_mels=40)
  text = adapters.get_modality("text").input_layer(
      problem_lib.FeatureSpec("text", length=8), 20, 16)  # a text -> label input
  assert type(text).__name__ == "TokenInput" and text.positions is True
  ids = {"": tf.constant([[5, 6, 2, 0]])}
  np.testing.assert_array_equal(  # token_dropout defaults to 0
      adapters.get_modality("text").augment(ids, None, seed)[""], ids[""])
  assert decoding.DecodeConfig().method == "greedy"  # the library's decoding defaults


def test_explicit_settings_reach_the_pipeline_and_the_model():
  """Settings passed as values take effect down to the features and the layers, and
  gin's (unreadable) bindings are never consulted on the way."""
  gin.parse_config(UNREADABLE)
  assert adapters.ModalityConfigs() == adapters.ModalityConfigs(
      image.ImageConfig(), speech.SpeechConfig())
  cfg = adapters.ModalityConfigs(image=image.ImageConfig(patch_size=8, stem="conv",
                                                         random_shift=3),
                                 speech=speech.SpeechConfig(num_mels=40, conv_channels=8))
  img_p, wav_p = _problem("gin_edges_image", IMAGE), _problem("gin_edges_speech", SPEECH)
  model = model_lib.build([img_p, wav_p], {}, modality_cfg=cfg)
  assert model.modality_cfg is cfg
  seed = tf.constant([3, 4], tf.int64)
  img = tf.cast(tf.random.uniform([28, 28, 1], 0, 255, tf.int32), tf.uint8)
  for p, raw in ((img_p, img), (wav_p, _wav())):
    ex = data_lib.example_features(p, {"inputs": raw, "targets": tf.constant(1)}, None,
                                   training=True, seed=seed, modality_cfg=cfg)
    logits = model({k: v[tf.newaxis] for k, v in ex.items()}, problem=p.name)
    assert np.isfinite(logits.numpy()).all()
    if p is img_p:
      assert not np.array_equal(ex["inputs"], img)  # shifted by up to 3 pixels
    else:
      assert ex["inputs"].shape[-1] == 40
  layer = model.input_adapters[img_p.name]
  assert (layer.rows, len(layer.stem)) == (4, 3)  # conv stem: 28 -> 14 -> 7 -> 4
  assert model.input_adapters[wav_p.name].conv1.filters == 8


def _spy_on_decoding(monkeypatch) -> list:
  """-> the list of DecodeConfigs that evaluators are built with, from now on."""
  decode_cfgs, decode_function = [], decoding.decode_function

  def spy_decode(model, problem, max_len, cfg):
    decode_cfgs.append(cfg)
    return decode_function(model, problem, max_len, cfg)

  monkeypatch.setattr(decoding, "decode_function", spy_decode)
  return decode_cfgs


def test_trainer_resolves_gin_and_hands_it_down(tmp_path, data_dir, manual_dir,
                                                monkeypatch):
  """Trainer construction is an edge: gin's ImageConfig/SpeechConfig bindings reach the
  model and every input pipeline the run builds (variables, training, evaluation)."""
  gin.parse_config_files_and_bindings([os.path.join(ROOT, "gin/models/tiny.gin")], [
      "TrainConfig.problem = 'mnist'", "ImageConfig.random_shift = 3",
      "DecodeConfig.method = 'beam'", "DecodeConfig.beam_size = 2",
      "TrainConfig.eval_max_examples = 8"])
  want = adapters.ModalityConfigs(
      image=image.ImageConfig(patch_size=7, random_shift=3),        # tiny.gin + binding
      speech=speech.SpeechConfig(num_mels=40, conv_channels=8))     # tiny.gin
  seen = []
  dataset = data_lib.dataset

  def spy(*args, **kwargs):
    seen.append(kwargs.get("modality_cfg"))
    return dataset(*args, **kwargs)

  monkeypatch.setattr(data_lib, "dataset", spy)
  decode_cfgs = _spy_on_decoding(monkeypatch)
  t = trainer_lib.Trainer(str(tmp_path), data_dir, manual_dir, training=False)
  gin.clear_config()  # the values were resolved once: nothing below reads gin
  assert t.model.modality_cfg == want
  assert t.model.input_adapters["mnist"].rows == 28 // 7
  next(iter(t.dataset(tf.distribute.InputContext(), t.problem)))
  t.evaluate("eval", 0)  # the trainer's own evaluator: the bindings' decoding
  evaluation.Evaluator(t.model, t.problem, t.vocab, data_dir, 4).evaluate("eval", 4)
  assert len(seen) == 4 and all(s == want for s in seen), seen
  assert decode_cfgs == [decoding.DecodeConfig(method="beam", beam_size=2),
                         decoding.DecodeConfig()], decode_cfgs


def test_final_evaluation_decodes_with_the_final_scope(tmp_path, data_dir, manual_dir,
                                                       monkeypatch):
  """`final/DecodeConfig.*` decodes the final evaluation only, over the unscoped
  bindings; the periodic evaluations keep the unscoped decoding (a recipe validates
  greedily and reports its test split with beam search)."""
  gin.parse_config_files_and_bindings([os.path.join(ROOT, "gin/models/tiny.gin")], [
      "TrainConfig.problem = 'mnist'", "TrainConfig.train_steps = 2",
      "TrainConfig.batch_size = 4", "TrainConfig.eval_every_steps = 1",
      "TrainConfig.eval_max_examples = 4", "TrainConfig.final_eval_role = 'eval'",
      "DecodeConfig.beam_size = 2", "final/DecodeConfig.method = 'beam'"])
  decode_cfgs = _spy_on_decoding(monkeypatch)
  t = trainer_lib.Trainer(str(tmp_path), data_dir, manual_dir)
  gin.clear_config()
  t.train()
  assert decode_cfgs == [decoding.DecodeConfig(beam_size=2),
                         decoding.DecodeConfig(method="beam", beam_size=2)], decode_cfgs
  assert os.path.exists(tmp_path / "metrics_eval_step2.json")


def test_optimizer_schedule_pruning_precision_read_no_gin():
  """The builders use the values they are given (here: the defaults), whatever gin binds
  (before, `optim.optimizer`, `pruning.maybe_pruner` and `precision.apply` read gin)."""
  gin.parse_config([f"optimizer.{k} = @gin_edges_unreadable()" for k in ("name", "clipnorm")]
                   + [f"learning_rate_schedule.{k} = @gin_edges_unreadable()"
                      for k in ("learning_rate", "warmup_steps")]
                   + ["PruningConfig.target_sparsity = @gin_edges_unreadable()",
                      "precision.policy = @gin_edges_unreadable()"])
  opt, clipnorm = optim.make_optimizer(100)
  assert isinstance(opt, keras.optimizers.AdamW) and clipnorm == 1.0
  assert float(optim.make_schedule(1000)(500)) == pytest.approx(1e-3)  # default peak
  assert pruning.maybe_pruner(None) is None  # default target_sparsity 0: off
  try:
    assert precision.apply() == "float32"
  finally:
    precision.reset()


def test_trainer_resolves_optimizer_and_pruning_bindings(tmp_path, data_dir, manual_dir):
  """Trainer construction reads the optimizer, schedule and pruning bindings once."""
  gin.parse_config_files_and_bindings([os.path.join(ROOT, "gin/models/tiny.gin")], [
      "TrainConfig.problem = 'mnist'", "TrainConfig.train_steps = 10",
      "optimizer.name = 'sgd'", "optimizer.clipnorm = 0.5",
      "learning_rate_schedule.learning_rate = 0.25",
      "learning_rate_schedule.decay = 'constant'", "learning_rate_schedule.warmup_steps = 1",
      "PruningConfig.target_sparsity = 0.5", "PruningConfig.end_step = 8",
      "PruningConfig.frequency = 2"])
  t = trainer_lib.Trainer(str(tmp_path), data_dir, manual_dir)
  gin.clear_config()
  assert isinstance(t.optimizer, keras.optimizers.SGD) and t.clipnorm == 0.5
  assert float(t.optimizer._learning_rate(5)) == pytest.approx(0.25)  # the schedule
  assert t.pruner is not None and t.pruner.cfg == pruning.PruningConfig(
      target_sparsity=0.5, end_step=8, frequency=2)

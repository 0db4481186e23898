"""Per-problem speech front ends: a problem's `FeatureSpec.front_end` overrides the
model-wide SpeechConfig for its own features and adapter, so one model holds speech
problems with different log-mel settings; a mistake is one error naming the problem."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from onemodel import adapters
from onemodel import data as data_lib
from onemodel import model as model_lib
from onemodel import problem as problem_lib
from onemodel.adapters import speech
from onemodel.errors import UserError

COARSE = {"num_mels": 40, "hop_ms": 20.0, "conv_channels": 8}


def _coarse(fsdd):
  return dataclasses.replace(fsdd, name="fsdd_coarse",
                             inputs=dataclasses.replace(fsdd.inputs, front_end=COARSE))


def test_front_end_overrides_the_model_wide_settings(problems, manual_dir):
  fsdd = problems["fsdd"]
  wav, rate = tf.audio.decode_wav(tf.io.read_file(
      f"{manual_dir}/fsdd/recordings/0_george_0.wav"), desired_channels=1)
  assert int(rate) == fsdd.inputs.sample_rate
  mod = adapters.get_modality("speech")
  default = mod.features(wav[:, 0], fsdd.inputs, None, training=False)[""]
  coarse = mod.features(wav[:, 0], _coarse(fsdd).inputs, None, training=False)[""]
  n = fsdd.inputs.length
  assert default.shape == (-(-n // 80), speech.SpeechConfig().num_mels)  # 10 ms at 8 kHz
  assert coarse.shape == (-(-n // 160), 40)                              # 20 ms
  assert speech.settings(_coarse(fsdd).inputs) == dataclasses.replace(
      speech.SpeechConfig(), **COARSE)


def test_one_model_holds_two_speech_front_ends(problems, data_dir):
  fsdd, coarse = problems["fsdd"], _coarse(problems["fsdd"])
  vocabs = {p.name: data_lib.get_vocab(p, data_dir) for p in (fsdd, coarse)}
  model = model_lib.build([fsdd, coarse], vocabs)
  for p in (fsdd, coarse):
    batch = next(iter(data_lib.dataset(p, "train", data_dir, 2, training=True,
                                       vocab=vocabs[p.name])))
    logits = model(batch, problem=p.name)
    assert np.isfinite(logits.numpy()).all()
  kernels = {v.path: v.shape for v in model.variables if v.path.endswith("conv1/kernel")}
  # Each problem's own subsampler, with its own channel count.
  assert sorted(s[-1] for s in kernels.values()) == [8, speech.SpeechConfig().conv_channels]


@pytest.mark.parametrize("front_end, modality, expected", [
    ({"n_mels": 40}, "speech", "unknown setting 'n_mels' (allowed: conv_channels, "),
    ({"hop_ms": 0}, "speech", "hop_ms=0 must be a number >= 0.001"),
    ({"num_mels": 40.5}, "speech", "num_mels=40.5 must be an integer >= 1"),
    ({"time_mask": "20"}, "speech", "time_mask='20' must be an integer >= 0"),
    ({"num_mels": 40}, "image", "front-end settings are for speech features, not image"),
])
def test_bad_front_end_is_one_error_naming_the_problem(front_end, modality, expected):
  spec = problem_lib.FeatureSpec(modality, length=8000, sample_rate=8000,
                                 shape=(28, 28, 1), front_end=front_end)
  with pytest.raises(UserError) as e:
    problem_lib.Problem(name="bad_speech", builder=None, raw_subdir="", splits={},
                        inputs=spec, metrics=(), to_raw=None,
                        targets=problem_lib.FeatureSpec("label", length=2,
                                                        class_names=("a",)))
  assert str(e.value).startswith("problem bad_speech: inputs FeatureSpec.front_end: ")
  assert expected in str(e.value)

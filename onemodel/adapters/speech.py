"""Speech: log-mel features with tf.signal, then a strided-convolution subsampler (4x in
time, as the Conv2dSubsampling of speech Transformers, e.g. Dong et al. 2018).

Features are computed in tf.data (so they can be cached); the layer sees
[B, frames, mels] plus the number of valid frames."""

import dataclasses
from typing import Optional

import keras
import tensorflow as tf

from onemodel import errors
from onemodel.adapters import base
from onemodel.errors import UserError


@dataclasses.dataclass(frozen=True)
class SpeechConfig:
  """The model-wide speech settings, a plain value: `SpeechConfig()` is the defaults
  below, whatever gin binds; `adapters.ModalityConfigs.from_gin()` (at the edges only)
  reads the bindings. A problem's `FeatureSpec.front_end` overrides them for it (`settings`)."""
  num_mels: int = 80
  frame_ms: float = 25.0
  hop_ms: float = 10.0
  conv_channels: int = 64
  # SpecAugment (Park et al. 2019, arXiv:1904.08779) at training time: one frequency
  # mask of up to this many mel bins and one time mask of up to this many frames.
  freq_mask: int = 0
  time_mask: int = 0
  # Batch normalization after each subsampling convolution (as the image stem's
  # ImageConfig.stem_batch_norm).
  conv_batch_norm: bool = False

  def __post_init__(self):
    errors.check_field_types(self, "SpeechConfig")


# (lowest allowed value, type) of each per-problem front-end setting.
_RANGES = {"num_mels": (1, int), "frame_ms": (1e-3, float), "hop_ms": (1e-3, float),
           "conv_channels": (1, int), "freq_mask": (0, int), "time_mask": (0, int)}


def own_config(modality_cfg) -> SpeechConfig:
  """The speech part of an `adapters.ModalityConfigs` (None: the defaults)."""
  return modality_cfg.speech if modality_cfg is not None else SpeechConfig()


def settings(spec, cfg: Optional[SpeechConfig] = None) -> SpeechConfig:
  """The speech settings of one problem's feature: the model-wide `cfg` (None: the
  defaults), with the problem's own `FeatureSpec.front_end` overrides."""
  return dataclasses.replace(cfg if cfg is not None else SpeechConfig(),
                             **dict(spec.front_end))


def check_front_end(where: str, spec) -> None:
  """A user mistake in `spec.front_end` -> UserError naming `where` and the setting."""
  if spec.modality != "speech":
    raise UserError(f"{where}: front-end settings are for speech features, not "
                    f"{spec.modality}")
  for key, value in dict(spec.front_end).items():
    if key not in _RANGES:
      raise UserError(f"{where}: unknown setting {key!r} (allowed: "
                      f"{', '.join(sorted(_RANGES))})")
    low, kind = _RANGES[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
        (kind is int and int(value) != value) or value < low:
      what = "an integer" if kind is int else "a number"
      raise UserError(f"{where}: {key}={value!r} must be {what} >= {low}")


def log_mel(waveform, sample_rate, cfg: SpeechConfig):
  """[samples] float waveform -> [frames, num_mels] log-mel spectrogram."""
  frame = int(round(sample_rate * cfg.frame_ms / 1000))
  hop = int(round(sample_rate * cfg.hop_ms / 1000))
  fft = 1 << (frame - 1).bit_length()
  stft = tf.signal.stft(waveform, frame_length=frame, frame_step=hop, fft_length=fft,
                        pad_end=True)
  power = tf.square(tf.abs(stft))                                # [frames, fft/2+1]
  mel = tf.signal.linear_to_mel_weight_matrix(
      cfg.num_mels, fft // 2 + 1, sample_rate, lower_edge_hertz=20.0,
      upper_edge_hertz=sample_rate / 2)
  return tf.math.log(tf.matmul(power, mel) + 1e-6)               # [frames, mels]


def num_frames(num_samples, sample_rate, cfg: SpeechConfig):
  hop = int(round(sample_rate * cfg.hop_ms / 1000))
  return -(-num_samples // hop)


class Subsampler(keras.layers.Layer):

  def __init__(self, model_dim, cfg: SpeechConfig, **kwargs):
    super().__init__(**kwargs)
    c, bn = cfg.conv_channels, cfg.conv_batch_norm
    self.conv1 = keras.layers.Conv2D(c, 3, strides=2, padding="same", use_bias=not bn,
                                     name="conv1")
    self.conv2 = keras.layers.Conv2D(c, 3, strides=2, padding="same", use_bias=not bn,
                                     name="conv2")
    # The norms' offsets replace the convs' biases.
    self.norms = [keras.layers.BatchNormalization(name=f"norm{i}") for i in (1, 2)] \
        if bn else []
    self.proj = keras.layers.Dense(model_dim, name="proj")
    self.model_dim = model_dim

  def output_length(self, feats):
    return -(-tf.shape(feats[""])[1] // 4)

  def call(self, feats, training=False):
    x = feats[""][..., tf.newaxis]                      # [B, F, M, 1]
    x = base.conv_gelu_stack(x, (self.conv1, self.conv2), self.norms,
                             training)                  # [B, F/4, M/4, C]
    b, f = tf.shape(x)[0], tf.shape(x)[1]
    x = tf.reshape(x, [b, f, x.shape[2] * x.shape[3]])  # [B, F/4, M/4*C]
    x = self.proj(x)
    x += base.position_embedding(f, self.model_dim, dtype=x.dtype)
    valid = -(-feats["length"] // 4)                    # frames left after 2 stride-2 convs
    return x, tf.sequence_mask(valid, f, dtype=x.dtype)


class Speech(base.Modality):
  name = "speech"

  def features(self, raw, spec, vocab, training, seed=None, modality_cfg=None):
    cfg = settings(spec, own_config(modality_cfg))
    wav = tf.cast(raw, tf.float32)
    if raw.dtype == tf.int16:
      wav /= 32768.0
    wav = wav[:spec.length]
    frames = num_frames(spec.length, spec.sample_rate, cfg)
    valid = num_frames(tf.shape(wav)[0], spec.sample_rate, cfg)
    feats = log_mel(wav, spec.sample_rate, cfg)               # [valid, mels]
    # Per-utterance mean/variance normalization over the real frames.
    mean, var = tf.nn.moments(feats, axes=[0], keepdims=True)
    feats = (feats - mean) * tf.math.rsqrt(var + 1e-5)
    feats = base.pad_or_truncate(feats, frames)               # [frames, mels]
    out = {"": feats, "length": tf.minimum(valid, frames)}
    return self.augment(out, spec, seed, modality_cfg) if training else out

  def augment(self, feats, spec, seed, modality_cfg=None):
    """SpecAugment on the real frames (padding frames are zeros either way)."""
    cfg = settings(spec, own_config(modality_cfg))
    if not (cfg.freq_mask or cfg.time_mask):
      return feats
    return {**feats, "": _spec_augment(feats[""], feats["length"], cfg, seed)}

  def decode_raw(self, data, spec):
    """WAV bytes (16-bit PCM) -> float waveform in [-1, 1] at the problem's rate."""
    tf.debugging.Assert(
        tf.strings.length(data) > 44,
        ["onemodel: input is not a WAV file (too short for a RIFF/WAVE header)"])
    tf.debugging.Assert(
        tf.equal(tf.strings.substr(data, 0, 4), b"RIFF") &
        tf.equal(tf.strings.substr(data, 8, 4), b"WAVE"),
        ["onemodel: input is not a RIFF/WAVE file"])
    audio, rate = tf.audio.decode_wav(data, desired_channels=1)
    tf.debugging.Assert(tf.equal(rate, spec.sample_rate),
                        [f"onemodel: WAV sample rate must be {spec.sample_rate} Hz, got",
                         rate])
    return audio[:, 0]

  def input_layer(self, spec, vocab_size, model_dim, embedding=None, name=None,
                  modality_cfg=None):
    return Subsampler(model_dim, settings(spec, own_config(modality_cfg)),
                      name=name or "speech_input")


def _spec_augment(feats, length, cfg, seed):
  """One frequency mask and one time mask; the time mask lies within the first `length`
  (real) frames and is at most a fifth of them. Stateless: a pure function of `seed`
  (a stateful random op would also make the tf.data iterator uncheckpointable)."""
  t, m = length, tf.shape(feats)[1]
  s = tf.random.experimental.stateless_split(seed, 4)

  def draw(i, high):
    return tf.random.stateless_uniform([], s[i], 0, high, tf.int32)

  f = draw(0, cfg.freq_mask + 1)
  f0 = draw(1, tf.maximum(m - f, 1))
  mel_keep = 1.0 - tf.cast((tf.range(m) >= f0) & (tf.range(m) < f0 + f), feats.dtype)
  w = tf.minimum(draw(2, cfg.time_mask + 1), t // 5)
  t0 = draw(3, tf.maximum(t - w, 1))
  frames = tf.range(tf.shape(feats)[0])
  time_keep = 1.0 - tf.cast((frames >= t0) & (frames < t0 + w), feats.dtype)
  return feats * time_keep[:, tf.newaxis] * mel_keep[tf.newaxis, :]


base.MODALITIES.register("speech", Speech())

"""Raw values -> what a TFDS feature of a modality stores, with a reason when they are bad.

Every function raises `BadValue` for a corrupt or unusable raw value; the sources skip
and count that example (with its file and the reason) and go on."""

import os
import wave
from typing import Sequence

import numpy as np


class BadValue(ValueError):
  """A raw example that cannot be used; the message is the reason."""


def text(value) -> str:
  if isinstance(value, bytes):
    try:
      value = value.decode("utf-8")
    except UnicodeDecodeError as e:
      raise BadValue(f"not UTF-8 ({e.reason} at byte {e.start})") from e
  if not isinstance(value, str):
    raise BadValue(f"expected text, got {type(value).__name__}")
  value = value.strip()
  if not value:
    raise BadValue("empty text")
  return value


def label(value, class_names: Sequence[str]) -> int:
  """A class name, or a class index (int or digits) into `class_names`."""
  if isinstance(value, bytes):
    value = value.decode("utf-8", "replace")
  if isinstance(value, str):
    value = value.strip()
    if value in class_names:
      return list(class_names).index(value)
    if value.lstrip("-").isdigit():
      value = int(value)
  if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
    if 0 <= value < len(class_names):
      return int(value)
    raise BadValue(f"label {value} out of range 0..{len(class_names) - 1}")
  shown = ", ".join(map(str, class_names[:5])) + (", ..." if len(class_names) > 5 else "")
  raise BadValue(f"label {value!r} is not one of the class names ({shown}) nor a class "
                 "index")


def image(path: str, shape) -> np.ndarray:
  """An image file (PNG, JPEG, GIF, BMP) -> uint8 [H, W, C] of exactly `shape`."""
  import tensorflow as tf
  try:
    data = tf.io.read_file(path)
    img = tf.io.decode_image(data, channels=shape[2], expand_animations=False).numpy()
  except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
    raise BadValue(f"not a readable image ({e.message.splitlines()[0][:80]})") from e
  if img.shape[:2] != tuple(shape[:2]):
    raise BadValue(f"image is {img.shape[0]}x{img.shape[1]}, the problem's shape is "
                   f"{shape[0]}x{shape[1]}")
  return img


def wav(path: str, sample_rate: int) -> np.ndarray:
  """A 16-bit mono PCM WAV at `sample_rate` -> int16 samples."""
  try:
    with wave.open(path, "rb") as w:
      if w.getsampwidth() != 2 or w.getnchannels() != 1:
        raise BadValue(f"{w.getnchannels()} channels, {8 * w.getsampwidth()} bit; "
                       "expected 16-bit mono PCM")
      if w.getframerate() != sample_rate:
        raise BadValue(f"sample rate {w.getframerate()} Hz, expected {sample_rate}")
      data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
  except (wave.Error, EOFError, OSError) as e:
    raise BadValue(f"not a readable WAV ({str(e) or type(e).__name__})") from e
  if data.size == 0:
    raise BadValue("no samples")
  return data.astype(np.int16)


def resolve(path: str, base_dir: str) -> str:
  """A path from a manifest, relative to the manifest's directory."""
  return path if os.path.isabs(path) else os.path.join(base_dir, path)

"""fsdd: Free Spoken Digit Dataset v1.0.10 -> the spoken word ("zero".."nine").

8 kHz mono 16-bit WAVs named {digit}_{speaker}_{idx}.wav; the official split puts
idx 0-4 in test (300 clips) and idx 5-49 in train (2700). FSDD has no validation split:
idx 5-9 of every speaker and digit (300 clips) are held out of train as `validation`
(the same speakers, other takes, as the test split is), so periodic evaluation never
sees the test set; the model trains on idx 10-49 (2400). The target is the word's
transcript, so WER on the test split equals 1 - accuracy. An unreadable WAV is skipped
and counted. Reference: log-mel + SVM reaches 99.3% on the official split."""

import os
import re
import wave

import numpy as np
import tensorflow_datasets as tfds

from onemodel import problem as problem_lib
from onemodel import rawdata

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SAMPLE_RATE = 8000
NAME_RE = re.compile(r"^([0-9])_([A-Za-z]+)_([0-9]+)\.wav$")
URL = ("https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/"
       "v1.0.10.tar.gz")


def read_wav(path):
  """-> int16 samples; raises ValueError for anything but 8 kHz mono 16-bit PCM."""
  with wave.open(path, "rb") as w:
    if w.getsampwidth() != 2 or w.getnchannels() != 1:
      raise ValueError(f"{w.getnchannels()} channels, {8 * w.getsampwidth()} bit")
    if w.getframerate() != SAMPLE_RATE:
      raise ValueError(f"sample rate {w.getframerate()} Hz, expected {SAMPLE_RATE}")
    data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
  if data.size == 0:
    raise ValueError("no samples")
  return data.astype(np.int16)


def split_for_index(idx: int) -> str:
  """Official: idx 0-4 test, 5-49 train; of train, idx 5-9 are held out."""
  return "test" if idx < 5 else "validation" if idx < 10 else "train"


class OnemodelFsdd(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  name = "onemodel_fsdd"
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.1.0": "validation split: idx 5-9 of the official train split."}
  RAW_FILES = ("0_jackson_0.wav",)
  HAS_DOWNLOAD = True
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Place FSDD's recordings/*.wav in the manual dir."

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description="Free Spoken Digit Dataset: spoken English digits at 8 kHz.",
        features=tfds.features.FeaturesDict({
            "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16),
            "transcript": tfds.features.Text(),
            "speaker": tfds.features.Text(),
        }),
        homepage="https://github.com/Jakobovski/free-spoken-digit-dataset")

  def _split_generators(self, dl_manager):
    manual = getattr(dl_manager, "_manual_dir", None)
    if manual and os.path.exists(os.path.join(manual, self.RAW_FILES[0])):
      rec = os.fspath(manual)
    else:  # Upstream release archive: free-spoken-digit-dataset-1.0.10/recordings/.
      root = dl_manager.download_and_extract(URL)
      rec = os.path.join(os.fspath(root), "free-spoken-digit-dataset-1.0.10", "recordings")
    # A stray file (not DIGIT_SPEAKER_INDEX.wav) belongs to no split: skipped, counted.
    stray = rawdata.SkipCounter("fsdd recordings")
    split_of = {}
    for f in sorted(os.listdir(rec)):
      m = NAME_RE.match(f)
      if m is None:
        stray.skip(f, "not a DIGIT_SPEAKER_INDEX.wav recording")
      else:
        split_of[f] = split_for_index(int(m.group(3)))
    stray.report()
    return {s: self._generate_examples(rec, [f for f in split_of if split_of[f] == s], s)
            for s in ("train", "validation", "test")}

  def _generate_examples(self, rec, files, split):
    skipped = rawdata.SkipCounter(f"fsdd {split}")
    for f in files:
      digit, speaker, _ = f[:-4].split("_")
      try:
        audio = read_wav(os.path.join(rec, f))
      except (wave.Error, EOFError, ValueError, OSError) as e:
        skipped.skip(f, f"not a readable WAV ({str(e) or type(e).__name__})")
        continue
      yield f, {"audio": audio, "transcript": WORDS[int(digit)], "speaker": speaker}
    skipped.report()


problem_lib.register(problem_lib.Problem(
    name="fsdd",
    builder=OnemodelFsdd,
    raw_subdir="fsdd/recordings",
    # 1.5 s covers all but 2 of the 3000 clips (longest 2.3 s); longer ones are cut.
    inputs=problem_lib.FeatureSpec("speech", length=12000, sample_rate=SAMPLE_RATE),
    targets=problem_lib.FeatureSpec("text", length=8,
                                    vocab=problem_lib.VocabSpec("sentencepiece", 64)),
    splits={"train": "train", "eval": "validation", "test": "test"},
    metrics=("wer", "accuracy"),
    to_raw=lambda ex: {"inputs": ex["audio"], "targets": ex["transcript"]},
    description="Free Spoken Digit Dataset: speech -> word"))

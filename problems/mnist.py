"""mnist: 28x28 grey digits -> class label (LeCun et al. 1998). Official 60k/10k split.

MNIST has no official validation split. Periodic evaluation (and any choice made from
it) must not see the test set, so the first 5,000 training images are held out as
`validation` (TensorFlow's classic `mnist.read_data_sets(validation_size=5000)` did the
same) and the model trains on the other 55,000; `test` is for final numbers only.

Raw file: MANUAL_DIR/mnist/mnist.npz (Keras' layout: x_train, y_train, x_test, y_test).
Published reference: LeNet-5 0.95% test error; a small CNN about 99% accuracy."""

import numpy as np
import tensorflow_datasets as tfds

from onemodel import problem as problem_lib
from onemodel import rawdata
from onemodel.errors import UserError

URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
VALIDATION = 5000  # the first training images, held out
KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path):
  """Keras' mnist.npz -> its four arrays. A file that is not that layout (missing
  arrays, images not N x 28 x 28 uint8, labels not one integer 0..9 per image) is one
  error naming the file: a wrong layout is not a few corrupt examples."""
  try:
    with np.load(path, allow_pickle=False) as d:
      missing = [k for k in KEYS if k not in d.files]
      if missing:
        raise UserError(f"{path}: no array {', '.join(missing)} (it has "
                        f"{', '.join(d.files) or 'none'}); expected Keras' mnist.npz "
                        f"layout ({', '.join(KEYS)})")
      arrays = {k: d[k] for k in KEYS}
  except UserError:
    raise
  except Exception as e:  # zipfile.BadZipFile, ValueError, OSError, EOFError
    raise UserError(f"{path} is not a readable npz file: {type(e).__name__}: {e}") from e
  for part in ("train", "test"):
    x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
    if x.ndim != 3 or x.shape[1:] != (28, 28) or x.dtype != np.uint8:
      raise UserError(f"{path}: x_{part} is {x.dtype} {x.shape}, expected uint8 "
                      "(N, 28, 28)")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
      raise UserError(f"{path}: y_{part} is {y.dtype} {y.shape}, expected one integer "
                      f"label per image ({len(x)},)")
    bad = np.flatnonzero((y < 0) | (y > 9))
    if bad.size:
      raise UserError(f"{path}: y_{part} has {bad.size} label(s) outside 0..9 (e.g. "
                      f"{y[bad[0]]} at index {bad[0]})")
  return arrays


class OnemodelMnist(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  name = "onemodel_mnist"
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.1.0": "validation split: the first 5,000 training images."}
  RAW_FILES = ("mnist.npz",)
  HAS_DOWNLOAD = True
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Place mnist.npz (Keras layout) in the manual dir."

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description="MNIST handwritten digits.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(28, 28, 1)),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
        homepage="http://yann.lecun.com/exdb/mnist/")

  def _split_generators(self, dl_manager):
    path = rawdata.local_or_download(dl_manager, {"mnist.npz": URL})["mnist.npz"]
    arrays = load_npz(path)
    x, y = arrays["x_train"], arrays["y_train"]
    return {
        "train": self._generate_examples(x[VALIDATION:], y[VALIDATION:], VALIDATION),
        "validation": self._generate_examples(x[:VALIDATION], y[:VALIDATION]),
        "test": self._generate_examples(arrays["x_test"], arrays["y_test"]),
    }

  def _generate_examples(self, images, labels, first=0):
    # Keys are indices into the npz arrays, so an example names its raw row.
    for i, (img, label) in enumerate(zip(images, labels), first):
      yield i, {"image": img[..., None].astype(np.uint8), "label": int(label)}


problem_lib.register(problem_lib.Problem(
    name="mnist",
    builder=OnemodelMnist,
    raw_subdir="mnist",
    inputs=problem_lib.FeatureSpec("image", shape=(28, 28, 1)),
    targets=problem_lib.FeatureSpec("label", length=2,
                                    class_names=tuple(str(i) for i in range(10))),
    splits={"train": "train", "eval": "validation", "test": "test"},
    metrics=("accuracy",),
    to_raw=lambda ex: {"inputs": ex["image"], "targets": ex["label"]},
    description="MNIST digits: image -> class"))

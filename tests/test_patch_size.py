"""Per-problem image patch sizes: a problem may set its own; otherwise the model-wide
ImageConfig.patch_size adapts to the image, so one mixture holds 28x28 and 32x32 images."""

import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import cli, one_line_error, tiny_gin
from onemodel import problem as problem_lib
from onemodel.adapters import image
from onemodel.errors import UserError

PLUGIN = '''
from onemodel import mixtures, problem, sources
problem.register(sources.problem(
    "digits32", sources.ImageFolder({"train": "train", "test": "test"}),
    inputs=problem.FeatureSpec("image", shape=(32, 32, 1)),
    targets=problem.FeatureSpec("label", length=2, class_names=tuple("0123456789"))))
mixtures.register(mixtures.Mixture(name="digits_28_and_32", problems=("mnist", "digits32")))
'''


def test_default_patch_size_adapts_to_the_image():
  cfg = image.ImageConfig(patch_size=7)
  spec = lambda h, w, p=0: problem_lib.FeatureSpec("image", shape=(h, w, 1), patch_size=p)
  assert image.patch_size(spec(28, 28), cfg) == 7
  assert image.patch_size(spec(32, 32), cfg) == 4
  assert image.patch_size(spec(224, 224), image.ImageConfig(patch_size=16)) == 16
  assert image.patch_size(spec(30, 40), cfg) == 5
  assert image.patch_size(spec(32, 32, 8), cfg) == 8  # the problem's own wins


def test_patch_size_that_does_not_divide_is_one_error():
  with pytest.raises(UserError) as e:
    problem_lib.Problem(name="bad_patch", builder=None, raw_subdir="", splits={},
                        inputs=problem_lib.FeatureSpec("image", shape=(32, 32, 3),
                                                       patch_size=7),
                        targets=problem_lib.FeatureSpec("label", length=2, class_names=("a",)),
                        metrics=(), to_raw=None)
  assert "problem bad_patch: inputs FeatureSpec.patch_size=7 does not divide its 32x32" \
      in str(e.value)


def test_mixture_of_28_and_32_pixel_images_trains(tmp_path, data_dir, manual_dir):
  plug = tmp_path / "plug"
  plug.mkdir()
  (plug / "digits32.py").write_text(PLUGIN)
  raw = tmp_path / "raw" / "digits32"
  with np.load(os.path.join(manual_dir, "mnist", "mnist.npz")) as d:
    parts = {"train": (d["x_test"][:80], d["y_test"][:80]),
             "test": (d["x_test"][80:100], d["y_test"][80:100])}
  for split, (xs, ys) in parts.items():
    for i, (x, y) in enumerate(zip(xs, ys)):
      (raw / split / str(y)).mkdir(parents=True, exist_ok=True)
      padded = np.pad(x, 2)[..., None]  # 28x28 digits centred in 32x32, as in LeNet-5
      (raw / split / str(y) / f"{i}.png").write_bytes(tf.io.encode_png(padded).numpy())
  out = str(tmp_path / "run")
  rc, so, se = cli("onemodel-train", *tiny_gin("digits_28_and_32", 4), f"--usr_dir={plug}",
                   f"--output_dir={out}", f"--data_dir={data_dir}",
                   f"--manual_dir={manual_dir},digits32={raw}")
  assert rc == 0, se[-3000:]
  assert "step 4/4" in so
  assert "ImageConfig.patch_size = 7" in open(os.path.join(out, "config.gin")).read()


def test_bad_patch_size_in_a_plugin_is_one_line(tmp_path):
  plug = tmp_path / "plug_bad"
  plug.mkdir()
  (plug / "p.py").write_text(PLUGIN.replace('shape=(32, 32, 1))', 'shape=(32, 32, 1), '
                                            'patch_size=7)'))
  rc, so, se = cli("onemodel-problems", f"--usr_dir={plug}")
  one_line_error(rc, se, "problem digits32", "FeatureSpec.patch_size=7", f"{plug}/p.py:3")

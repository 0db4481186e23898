"""--usr_dir plugins: a real package (TFDS builders and sibling imports work), failures
name the plugin's own file and line, and a run remembers its plugins."""

import json
import os
import textwrap

import pytest

from conftest import cli, one_line_error, tiny_gin
from onemodel import plugins
from onemodel import registry
from onemodel.errors import UserError

# A plugin with its own TFDS builder on real MNIST digits, whose class names come from a
# sibling module imported three ways (plain, relative, by package name).
BUILDER = '''
import numpy as np
import tensorflow_datasets as tfds
from onemodel import problem as problem_lib
import {pkg}_names
from . import {pkg}_names as names_relative
from {pkg} import {pkg}_names as names_absolute

assert {pkg}_names is names_relative is names_absolute  # one module, not three copies


class {cls}(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  name = "{name}"
  VERSION = tfds.core.Version("1.0.0")
  RAW_FILES = ("mnist.npz",)
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Place mnist.npz (Keras layout) in the manual dir."

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({{
        "image": tfds.features.Image(shape=(28, 28, 1)),
        "label": tfds.features.ClassLabel(num_classes=10)}}))

  def _split_generators(self, dl_manager):
    with np.load(dl_manager.manual_dir / "mnist.npz") as d:
      x, y = d["x_test"][:96], d["y_test"][:96]
    return {{"train": self._generate_examples(x[:64], y[:64]),
            "test": self._generate_examples(x[64:], y[64:])}}

  def _generate_examples(self, images, labels):
    for i, (img, label) in enumerate(zip(images, labels)):
      yield i, {{"image": img[..., None], "label": int(label)}}


problem_lib.register(problem_lib.Problem(
    name="{name}", builder={cls}, raw_subdir="mnist",
    inputs=problem_lib.FeatureSpec("image", shape=(28, 28, 1)),
    targets=problem_lib.FeatureSpec("label", length=2, class_names={pkg}_names.NAMES),
    splits={{"train": "train", "eval": "test", "test": "test"}}, metrics=("accuracy",),
    to_raw=lambda ex: {{"inputs": ex["image"], "targets": ex["label"]}}))
'''


def write_plugin(root, pkg, name):
  d = root / pkg
  d.mkdir(parents=True)
  (d / f"{pkg}_names.py").write_text("NAMES = tuple(str(i) for i in range(10))\n")
  (d / "digits.py").write_text(BUILDER.format(pkg=pkg, name=name, cls=f"Builder_{name}"))
  return d


def test_usr_dir_is_a_package_with_builder_and_siblings(tmp_path, manual_dir,
                                                        isolated_registry):
  from onemodel import data as data_lib
  d = write_plugin(tmp_path, "plug_a", "plug_a_digits")
  registry.load_plugins()
  names = registry.import_usr_dir(str(d))
  assert names == ["plug_a.digits", "plug_a.plug_a_names"]
  p = registry.get_problem("plug_a_digits")
  prepared = str(tmp_path / "prepared")
  data_lib.prepare(p, prepared, manual_dir)  # TFDS imports the builder's package here
  assert sum(1 for _ in data_lib.raw_split(p, "train", prepared)) == 64


def test_usr_dir_named_like_an_installed_module(tmp_path, isolated_registry):
  # A directory called `json` must not replace the standard library's json.
  d = tmp_path / "json"
  d.mkdir()
  (d / "helper.py").write_text("VALUE = 3\n")
  (d / "plug.py").write_text("import helper\nfrom . import helper as h2\n"
                             "assert helper is h2\n")
  names = registry.import_usr_dir(str(d))
  assert names == ["onemodel_usr_json.helper", "onemodel_usr_json.plug"]
  assert hasattr(json, "dumps")


def test_failing_plugin_names_its_own_file_and_line(tmp_path):
  d = tmp_path / "broken_plug"
  d.mkdir()
  (d / "a_helper.py").write_text("X = 1\n\n\ndef f():\n  return {}['missing']\n")
  (d / "b_uses.py").write_text("import os\nimport a_helper\n\na_helper.f()\n")
  with pytest.raises(UserError) as e:
    registry.import_usr_dir(str(d))
  msg = str(e.value)
  assert "b_uses.py failed to import: KeyError" in msg
  assert f"({d}/a_helper.py:5)" in msg, msg  # the raising line, not importlib's frames

  d2 = tmp_path / "broken_import"
  d2.mkdir()
  (d2 / "c.py").write_text("\n\nimport no_such_module_xyz\n")
  with pytest.raises(UserError) as e:
    registry.import_usr_dir(str(d2))
  assert f"({d2}/c.py:3)" in str(e.value) and "frozen" not in str(e.value)

  d3 = tmp_path / "broken_syntax"
  d3.mkdir()
  (d3 / "s.py").write_text("x = 1\ndef (:\n")
  with pytest.raises(UserError) as e:
    registry.import_usr_dir(str(d3))
  assert f"({d3}/s.py:2)" in str(e.value)


def test_unknown_problem_hints_at_usr_dir():
  with pytest.raises(UserError) as e:
    registry.get_task("no_such_problem_xyz")
  assert "--usr_dir" in str(e.value)


def test_record_of_a_moved_plugin_dir_is_one_line(tmp_path):
  run = tmp_path / "run"
  run.mkdir()
  (run / plugins.RECORD_FILE).write_text(json.dumps({"usr_dirs": [str(tmp_path / "gone")]}))
  with pytest.raises(UserError) as e:
    plugins.load(run_dir=str(run))
  assert "no longer exists" in str(e.value) and str(tmp_path / "gone") in str(e.value)


def test_trained_plugin_run_evaluates_without_usr_dir(tmp_path, manual_dir):
  d = write_plugin(tmp_path, "plug_cli", "plug_cli_digits")
  out, data = str(tmp_path / "run"), str(tmp_path / "data")
  dirs = [f"--output_dir={out}", f"--data_dir={data}", f"--manual_dir={manual_dir}"]
  rc, so, se = cli("onemodel-train", *tiny_gin("plug_cli_digits", 2), *dirs,
                   f"--usr_dir={d}")
  assert rc == 0, se[-3000:]
  record = json.load(open(os.path.join(out, plugins.RECORD_FILE)))
  assert record["usr_dirs"] == [str(d)]

  rc, so, se = cli("onemodel-eval", *dirs)  # no --usr_dir: the run remembers it
  assert rc == 0, se[-3000:]
  assert json.loads(so.strip().splitlines()[-1])["problem"] == "plug_cli_digits"

  os.remove(os.path.join(out, plugins.RECORD_FILE))  # an older run: the hint says why
  rc, so, se = cli("onemodel-eval", *dirs)
  one_line_error(rc, se, "unknown problem 'plug_cli_digits'", "--usr_dir")


def test_plugin_import_error_is_one_line_from_the_cli(tmp_path):
  d = tmp_path / "bad_cli_plug"
  d.mkdir()
  (d / "p.py").write_text(textwrap.dedent("""
      from onemodel import problem
      problem.register(problem.Problem(name='bad', builder=None, raw_subdir='',
                                       inputs=None, targets=None, splits={},
                                       metrics=(), to_raw=None, no_such_field=1))
  """))
  rc, so, se = cli("onemodel-problems", f"--usr_dir={d}")
  one_line_error(rc, se, f"{d}/p.py:3", "no_such_field")

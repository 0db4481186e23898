"""End to end through the installed console scripts, on real data from ../shared/data:
train a tiny model for a few steps, checkpoint, resume, evaluate."""

import glob
import gzip
import json
import os
import re
import textwrap

import pytest

from conftest import cli, tiny_gin

PROBLEMS = ["mnist", "fsdd", "multi30k_en_de", "tinyshakespeare"]


def is_multi30k_test_pair(line, manual_dir):
  """Whether a shown example `  multi30k_en_de: SOURCE -> OUTPUT (reference REF)` has a
  source and reference that are one English/German line pair of test2016."""
  sides = []
  for lang in ("en", "de"):
    path = os.path.join(manual_dir, "multi30k", f"test_2016_flickr.{lang}.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
      sides.append(f.read().splitlines())
  return any(line.startswith(f"  multi30k_en_de: {en!r} -> ") and
             line.endswith(f"(reference {de!r})") for en, de in zip(*sides))


@pytest.mark.parametrize("problem", PROBLEMS)
def test_train_resume_eval(problem, tmp_path, data_dir, manual_dir):
  out = str(tmp_path / "run")
  dirs = [f"--output_dir={out}", f"--data_dir={data_dir}", f"--manual_dir={manual_dir}"]
  rc, so, se = cli("onemodel-train", *tiny_gin(problem, 4), *dirs)
  assert rc == 0, se[-3000:]
  assert "step 4/4" in so
  assert os.path.exists(os.path.join(out, "checkpoints", "ckpt-4.index"))
  # The run ends with the final evaluation's first test examples (TFDS order), each a
  # real example of the split: an MNIST digit's label, a Multi30k test2016 sentence pair.
  shown = so.split("first test examples:\n")[-1].splitlines() if problem != \
      "tinyshakespeare" else []
  assert [l.split(":")[0] for l in shown] == [f"  {problem}"] * (3 if shown else 0)
  assert ("first test examples" in so) == (problem != "tinyshakespeare")
  if problem == "mnist":
    assert all(re.search(r"\(reference '\d'\)$", l) for l in shown), shown
  if problem == "multi30k_en_de":
    assert all(is_multi30k_test_pair(l, manual_dir) for l in shown), shown
  for name in ("config.gin", "operative_config.gin"):
    assert "TrainConfig" in open(os.path.join(out, name)).read()
  assert glob.glob(os.path.join(out, "train", "events.out.tfevents.*"))

  # Re-running the same command with more steps resumes from the checkpoint (checked on
  # one problem: resuming does not depend on the modality, and each run costs ~10 s).
  steps = 4
  if problem == "mnist":
    rc, so, se = cli("onemodel-train", *tiny_gin(problem, 6), *dirs)
    assert rc == 0, se[-3000:]
    assert "resumed from" in so and "ckpt-4" in so
    assert "step 6/6" in so and "step 2/" not in so
    steps = 6

  rc, so, se = cli("onemodel-eval", f"--output_dir={out}", f"--data_dir={data_dir}",
                   f"--manual_dir={manual_dir}", "--split=test")
  assert rc == 0, se[-3000:]
  report = json.loads(so.strip().splitlines()[-1])
  assert report["step"] == steps and report["problem"] == problem
  metrics = report["metrics"]
  assert metrics["loss_per_token"] > 0
  expected = {"mnist": "accuracy", "fsdd": "wer", "multi30k_en_de": "bleu",
              "tinyshakespeare": "perplexity"}[problem]
  assert expected in metrics
  assert os.path.exists(os.path.join(out, f"metrics_test_step{steps}.json"))


def test_usr_dir_plugin_is_listed_and_trains(tmp_path, data_dir, manual_dir):
  usr = tmp_path / "usr"
  usr.mkdir()
  # A plugin problem: MNIST digits with the image turned upside down (a new problem on
  # the same real data; an image problem needs no vocabulary to be learned first).
  (usr / "mnist_flipped.py").write_text(textwrap.dedent("""
      import dataclasses
      import tensorflow as tf
      from onemodel import registry
      mnist = registry.get_problem('mnist')
      registry.register_problem(dataclasses.replace(
          mnist, name='mnist_flipped',
          to_raw=lambda ex: {'inputs': tf.image.flip_up_down(ex['image']),
                             'targets': ex['label']}))
  """))
  rc, so, se = cli("onemodel-problems", f"--usr_dir={usr}")
  assert rc == 0, se
  assert "mnist_flipped" in so and "multi30k_en_de" in so
  out = str(tmp_path / "run")
  rc, so, se = cli("onemodel-train", *tiny_gin("mnist_flipped", 2), f"--usr_dir={usr}",
                   f"--output_dir={out}", f"--data_dir={data_dir}",
                   f"--manual_dir={manual_dir}")
  assert rc == 0, se[-3000:]
  assert "eval mnist_flipped test @ step 2" in so


def test_first_command_recipe_runs_and_shows_examples(tmp_path, data_dir, manual_dir):
  """The README's first command's recipe, cut to a few steps: its gin-defined mixture
  trains, the run ends with the per-problem table, then each problem's first test
  examples (a source sentence beside its translation for Multi30k)."""
  rc, so, se = cli("onemodel-train", "--gin_file=gin/experiments/multimodel_quick.gin",
                   "--gin_param=TrainConfig.train_steps=4",
                   "--gin_param=TrainConfig.steps_per_loop=2",
                   "--gin_param=TrainConfig.eval_max_examples=8",
                   f"--output_dir={tmp_path / 'run'}", f"--data_dir={data_dir}",
                   f"--manual_dir={manual_dir}")
  assert rc == 0, se[-3000:]
  table, examples = so.split("first test examples:\n")
  assert [l.split()[0] for l in table.splitlines()[-4:]] == \
      ["mnist", "fsdd", "multi30k_en_de", "sst2"]
  shown = examples.splitlines()
  assert [l.split(":")[0].strip() for l in shown] == \
      [p for p in ("mnist", "fsdd", "multi30k_en_de", "sst2") for _ in range(3)]
  assert all(is_multi30k_test_pair(l, manual_dir) for l in shown[6:9]), shown
  assert shown[9].endswith("(reference 'negative')") or \
      shown[9].endswith("(reference 'positive')")

"""Mixtures: rates, schedules, shared vocabularies, joint training and evaluation of
problems of different modalities in one model."""

import dataclasses
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import cli, one_line_error, tiny_gin
from onemodel import data as data_lib
from onemodel import mixtures
from onemodel import registry
from onemodel.errors import UserError

NAMES = ["a", "b", "c"]


def _draws(sampler, start, n):
  return np.bincount([sampler.problem_index(s) for s in range(start, start + n)],
                     minlength=len(sampler.names)) / n


def test_fixed_rates_are_drawn_in_proportion():
  m = mixtures.Mixture("m", tuple(NAMES), rates={"a": 6, "b": 3, "c": 1})
  freq = _draws(mixtures.Sampler(m, NAMES, [1, 1, 1]), 0, 20000)
  np.testing.assert_allclose(freq, [0.6, 0.3, 0.1], atol=0.015)


def test_proportional_rates_with_temperature():
  sizes = [900, 90, 10]
  np.testing.assert_allclose(mixtures.rate_vector("proportional", NAMES, sizes, 1.0),
                             [0.9, 0.09, 0.01])
  flat = mixtures.rate_vector("proportional", NAMES, sizes, 2.0)
  np.testing.assert_allclose(flat, np.sqrt(sizes) / np.sqrt(sizes).sum())
  freq = _draws(mixtures.Sampler(mixtures.Mixture("m", tuple(NAMES), "proportional", 2.0),
                                 NAMES, sizes), 0, 20000)
  np.testing.assert_allclose(freq, flat, atol=0.015)


def test_schedule_switches_rates_at_the_named_step():
  m = mixtures.Mixture("m", tuple(NAMES), rates={"a": 1.0},
                       schedule=((300, "uniform"), (600, {"c": 1.0})))
  s = mixtures.Sampler(m, NAMES, [1, 1, 1])
  assert {s.problem_index(i) for i in range(300)} == {0}
  np.testing.assert_allclose(_draws(s, 300, 300), [1 / 3] * 3, atol=0.08)
  assert {s.problem_index(i) for i in range(600, 900)} == {2}
  assert s.problem_index(299) == 0 and s.problem_index(600) == 2
  # Draws are a function of (seed, step): a resumed run continues the same sequence.
  assert s.runs(290, 20) == mixtures.Sampler(m, NAMES, [1, 1, 1]).runs(290, 20)


def test_unknown_problem_in_mixture_names_it(problems):
  with pytest.raises(UserError, match="mixture joint: unknown problem 'mnsit'; closest: mnist"):
    mixtures.resolve(mixtures.Mixture("joint", ("mnsit", "fsdd")))
  with pytest.raises(UserError, match="rates name cifar"):
    mixtures.resolve(mixtures.Mixture("joint", ("mnist", "fsdd"), rates={"cifar": 1.0}))
  with pytest.raises(UserError, match="schedule steps must increase"):
    mixtures.resolve(mixtures.Mixture("joint", ("mnist", "fsdd"),
                                      schedule=((10, "uniform"), (5, "uniform"))))


def test_unknown_problem_in_gin_mixture_is_one_line_cli_error(tmp_path, data_dir, manual_dir):
  rc, so, se = cli("onemodel-train", "--gin_file=gin/models/tiny.gin",
                   "--gin_param=joint/Mixture.name='joint'",
                   "--gin_param=joint/Mixture.problems=['mnist', 'fdsd']",
                   "--gin_param=TrainConfig.problem=@joint/Mixture()",
                   f"--output_dir={tmp_path}", f"--data_dir={data_dir}",
                   f"--manual_dir={manual_dir}")
  assert rc == 1
  assert one_line_error(rc, se) == ("onemodel-train: error: mixture joint: unknown problem "
                                    "'fdsd'; closest: fsdd")


def test_mixture_names_share_the_problem_namespace(problems):
  assert "multimodel" in registry.MIXTURES
  with pytest.raises(ValueError, match="a problem of that name"):
    mixtures.register(mixtures.Mixture("mnist", ("fsdd",)))
  with pytest.raises(UserError, match="unknown problem 'multimodle'; closest: multimodel"):
    mixtures.resolve("multimodle")


def test_text_target_problems_share_one_vocabulary_a_classifier_keeps_its_own(
    isolated_registry, problems, data_dir):
  en_de, sst2 = problems["multi30k_en_de"], problems["sst2"]
  de_en = dataclasses.replace(en_de, name="multi30k_de_en_test",
                              to_raw=lambda ex: {"inputs": ex["de"], "targets": ex["en"]})
  registry.register_problem(de_en)
  probs, _ = mixtures.resolve(mixtures.Mixture("text3", (en_de.name, de_en.name, "sst2")))
  vocabs, keys = data_lib.get_vocabs(probs, data_dir)
  assert vocabs[en_de.name] is vocabs[de_en.name]
  assert keys[en_de.name] == keys[de_en.name] == "shared_sentencepiece"
  path = os.path.join(data_dir, "vocab",
                      mixtures.shared_vocab_name(probs[:2], "sentencepiece"))
  assert os.listdir(path) == ["spm8000.model"]
  assert not os.path.exists(os.path.join(
      data_dir, "vocab", mixtures.shared_vocab_name(probs, "sentencepiece")))
  # SST-2 (text -> label) has its own input embedding: its vocabulary is the one it
  # learns alone, and none of its text went into the translators'.
  assert "sst2" not in keys
  assert vocabs["sst2"].save_bytes() == data_lib.get_vocab(sst2, data_dir).save_bytes()
  assert vocabs["sst2"].save_bytes() != vocabs[en_de.name].save_bytes()
  v = vocabs[en_de.name]
  for text in ("A man rides a bicycle.", "Ein Mann fährt Fahrrad."):
    assert v.decode(v.encode_tf(text).numpy().tolist()) == text
  # Alone, each problem keeps its own vocabulary.
  alone, keys = data_lib.get_vocabs([en_de], data_dir)
  assert alone[en_de.name] is not v and keys == {}


def test_joint_checkpoint_evaluates_and_decodes_every_problem(data_dir, manual_dir, tmp_path):
  out = str(tmp_path / "joint")
  dirs = [f"--output_dir={out}", f"--data_dir={data_dir}", f"--manual_dir={manual_dir}"]
  rc, so, se = cli("onemodel-train", *tiny_gin("multimodel", 6), *dirs)
  assert rc == 0, se[-3000:]
  assert "steps mnist" in so and "fsdd" in so and "multi30k_en_de" in so
  # The run ends with one table line per problem (its first metric and its own steps),
  # then the first test examples.
  table = so.split("first test examples:")[0].strip().splitlines()[-4:]
  assert table[0].split() == ["problem", "metric", "test", "its", "steps"], so[-800:]
  rows = {line.split()[0]: line.split()[1:] for line in table[1:]}
  assert [rows[p][0] for p in ("mnist", "fsdd", "multi30k_en_de")] == \
      ["accuracy", "wer", "bleu"]
  for p, metric in (("mnist", "accuracy"), ("fsdd", "wer"), ("multi30k_en_de", "bleu")):
    assert f"eval {p} test @ step 6" in so
    saved = json.load(open(os.path.join(out, f"metrics_test_{p}_step6.json")))
    assert saved["mixture"] == "multimodel" and metric in saved["metrics"]
  assert glob.glob(os.path.join(out, "train", "events.out.tfevents.*"))
  # Every problem's batches arrived exactly as the sampler drew them (the trainer counts
  # the steps each problem's loop ran, and checkpoints the counts).
  counts = tf.train.load_variable(os.path.join(out, "checkpoints", "ckpt-6"),
                                  "problem_steps/.ATTRIBUTES/VARIABLE_VALUE")
  names = ["mnist", "fsdd", "multi30k_en_de"]
  sampler = mixtures.Sampler(registry.MIXTURES.get("multimodel"), names, [1, 1, 1], seed=0)
  np.testing.assert_array_equal(
      counts, np.bincount([sampler.problem_index(s) for s in range(6)], minlength=3))
  assert [int(rows[p][2]) for p in names] == counts.tolist()
  rc, so, se = cli("onemodel-eval", *dirs, "--split=test")
  assert rc == 0, se[-3000:]
  report = json.loads(so.strip().splitlines()[-1])
  assert report["problem"] == "multimodel" and report["step"] == 6
  assert set(report["metrics"]) == {"mnist", "fsdd", "multi30k_en_de"}
  assert "accuracy" in report["metrics"]["mnist"] and "wer" in report["metrics"]["fsdd"]
  # One checkpoint serves each problem at decode time.
  src = tmp_path / "src.txt"
  src.write_text("A dog runs.\n")
  rc, so, se = cli("onemodel-decode", *dirs, f"--decode_from_file={src}",
                   "--problem=multi30k_en_de")
  assert rc == 0 and len(so.strip().splitlines()) == 1, se[-3000:]


def test_decode_of_a_joint_run_must_name_the_problem(problems):
  from types import SimpleNamespace
  from onemodel.cli import common
  t = SimpleNamespace(problems=[problems["mnist"], problems["fsdd"]], problem=problems["mnist"],
                      output_dir="runs/j")
  with pytest.raises(UserError, match="trained mnist, fsdd: pass --problem"):
    common.pick_problem(t, "")
  with pytest.raises(UserError, match="--problem cifar is not in run"):
    common.pick_problem(t, "cifar")
  assert common.pick_problem(t, "fsdd") is problems["fsdd"]


def test_parameter_server_schedule_draws_every_step_like_the_sync_runner():
  """The PS runner schedules functions of at most steps_per_loop steps, and each step
  trains the problem the sampler draws for that very step (before: one draw per
  function, so a 5-step function trained one problem 5 times)."""
  from onemodel import async_training
  s = mixtures.Sampler(mixtures.Mixture("m", tuple(NAMES)), NAMES, [1, 1, 1], seed=3)
  plan = async_training.schedule(s, 17, 40, steps_per_loop=5)
  steps = [(i, first + k) for i, first, count in plan for k in range(count)]
  assert [step for _, step in steps] == list(range(17, 57))
  assert [i for i, _ in steps] == [s.problem_index(step) for step in range(17, 57)]
  assert max(count for _, _, count in plan) <= 5 and len({i for i, _ in steps}) == 3
  assert async_training.schedule(None, 0, 12, 5) == [(0, 0, 5), (0, 5, 5), (0, 10, 2)]

"""Model selection: the best checkpoint by a validation metric survives later saves,
patience stops a run (and its re-run), `--checkpoint=best` reads it; bad bindings are
one line."""

import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf

from conftest import cli, one_line_error, train_args
from onemodel import selection
from onemodel.errors import UserError


def _problem(name, *metrics):
  return types.SimpleNamespace(name=name, metrics=metrics)


def _best(tmp_path, select, problems, patience=0):
  w = tf.Variable(0.0)
  ckpt = tf.train.Checkpoint(weights={"w": w})
  best = selection.Best(selection.Selector(select, problems, "eval"),
                        str(tmp_path), ckpt, patience)
  return best, w


def _saved_w(best):
  return float(tf.train.load_variable(best.manager.latest_checkpoint,
                                      "weights/w/.ATTRIBUTES/VARIABLE_VALUE"))


def test_the_best_step_stays_while_later_ones_are_worse(tmp_path):
  best, w = _best(tmp_path, "accuracy", [_problem("p", "accuracy")], patience=2)
  stops = []
  for step, acc in [(10, 0.5), (20, 0.8), (30, 0.7), (40, 0.8)]:
    w.assign(float(step))
    stops.append(best.update(step, {"accuracy": acc, "loss_per_token": 1.0}))
  # A tie is no improvement: the second 0.8 is the second evaluation without one.
  assert stops == [False, False, False, True]
  assert _saved_w(best) == 20.0 and best.manager.latest_checkpoint.endswith("ckpt-20")
  state = json.load(open(os.path.join(tmp_path, "checkpoints", "best", "best.json")))
  assert state["step"] == 20 and state["stopped_at"] == 40
  assert state["values"] == {"p/accuracy": 0.8}


def test_a_copied_run_reads_its_own_best_checkpoint(tmp_path):
  """best.json names the checkpoint by the path it was saved at; a run directory copied
  elsewhere (the original then changed or gone) must read the copy's weights."""
  import shutil
  first = tmp_path / "first"
  best, w = _best(first, "accuracy", [_problem("p", "accuracy")])
  w.assign(7.0)
  best.update(10, {"accuracy": 0.5})
  shutil.copytree(first, tmp_path / "copy")
  shutil.rmtree(first)
  again, v = _best(tmp_path / "copy", "accuracy", [_problem("p", "accuracy")])
  assert again.path() == os.path.join(tmp_path, "copy", "checkpoints", "best", "ckpt-10")
  v.assign(0.0)
  tf.train.Checkpoint(weights={"w": v}).restore(again.path()).expect_partial()
  assert float(v) == 7.0


def test_lower_is_better_for_error_rates_and_losses(tmp_path):
  best, w = _best(tmp_path, "p/wer", [_problem("p", "wer")])
  for step, wer in [(1, 9.0), (2, 4.0), (3, 6.0)]:
    w.assign(float(step))
    best.update(step, {"wer": wer})
  assert _saved_w(best) == 2.0


def test_mean_rank_of_a_joint_run(tmp_path):
  problems = [_problem("a", "accuracy"), _problem("b", "wer"), _problem("c", "bleu")]
  best, w = _best(tmp_path, "mean_rank", problems)
  # Step 2 is best for a; step 3 second for a but best for b and c: mean rank 1/3
  # against step 2's 2/3, so step 3 is kept although a alone would keep step 2.
  for step, acc, wer, bleu in [(1, 0.1, 9.0, 1.0), (2, 0.9, 8.0, 2.0),
                               (3, 0.8, 1.0, 3.0)]:
    w.assign(float(step))
    best.update(step, {"a": {"accuracy": acc}, "b": {"wer": wer}, "c": {"bleu": bleu}})
  assert _saved_w(best) == 3.0


def test_a_resumed_run_forgets_the_evaluations_it_repeats(tmp_path):
  best, w = _best(tmp_path, "accuracy", [_problem("p", "accuracy")], patience=1)
  for step, acc in [(10, 0.5), (20, 0.4)]:
    best.update(step, {"accuracy": acc})
  assert best.stopped_at == 20
  again, _ = _best(tmp_path, "accuracy", [_problem("p", "accuracy")], patience=1)
  again.resume(10)
  assert again.stopped_at is None and [h["step"] for h in again.state["history"]] == [10]


@pytest.mark.parametrize("select, needle", [
    ("p/bleu", "reports accuracy"), ("q/accuracy", "not trained here"),
    ("accuracy", "write 'PROBLEM/accuracy'"), ("mean_rank", None)])
def test_a_select_that_names_nothing_is_one_line(select, needle):
  problems = [_problem("p", "accuracy"), _problem("r", "wer")]
  if needle is None:
    selection.Selector(select, problems, "eval")
    return
  with pytest.raises(UserError, match=needle):
    selection.Selector(select, problems, "eval")


def _args(out, data_dir, manual_dir, extra=()):
  params = ["TrainConfig.problem='mnist'", "TrainConfig.train_steps=60",
            "TrainConfig.batch_size=16", "TrainConfig.log_every_steps=5",
            "TrainConfig.steps_per_loop=5", "TrainConfig.checkpoint_every_steps=5",
            "TrainConfig.keep_checkpoints=1", "TrainConfig.eval_every_steps=5",
            "TrainConfig.eval_max_examples=32", "TrainConfig.eval_batch_size=32",
            "TrainConfig.final_eval_role='test'", "TrainConfig.deterministic=True",
            "TrainConfig.report_mfu=False", "TrainConfig.select='mnist/accuracy'",
            "TrainConfig.patience=2", *extra]
  return train_args(out, data_dir, manual_dir, params)


def test_patience_stops_the_run_and_the_best_checkpoint_is_evaluated(tmp_path, data_dir,
                                                                     manual_dir):
  out = str(tmp_path / "run")
  rc, so, se = cli("onemodel-train", *_args(out, data_dir, manual_dir))
  assert rc == 0, se[-3000:]
  state = json.load(open(os.path.join(out, "checkpoints", "best", "best.json")))
  history = state["history"]
  accs = [h["values"]["mnist/accuracy"] for h in history]
  first_best = accs.index(max(accs))
  assert state["step"] == history[first_best]["step"]
  # Stopped at the second evaluation after the best (accuracy on 32 examples of a tiny
  # model plateaus within 60 steps: checked, it stops here).
  assert state["stopped_at"] == history[first_best + 2]["step"] < 60, history
  assert len(history) == first_best + 3
  assert "early stop at step" in so
  main = tf.train.latest_checkpoint(os.path.join(out, "checkpoints"))
  assert main.endswith(f"ckpt-{state['stopped_at']}")  # keep_checkpoints=1 kept only it
  assert f"final evaluation of the best checkpoint, step {state['step']}" in so
  assert os.path.exists(os.path.join(out, f"metrics_test_best_step{state['step']}.json"))
  # A re-run trains nothing more.
  rc, so, se = cli("onemodel-train", *_args(out, data_dir, manual_dir))
  assert rc == 0 and "nothing left to train" in so, se[-2000:]
  assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")) == main
  # The tools read it as --checkpoint=best: the weights of the best step.
  rc, so, se = cli("onemodel-eval", f"--output_dir={out}", "--checkpoint=best",
                   "--split=eval", f"--data_dir={data_dir}",
                   "--gin_param=TrainConfig.eval_max_examples=32")
  assert rc == 0, se[-2000:]
  report = json.loads(so.strip().splitlines()[-1])
  assert report["step"] == state["step"]
  assert report["metrics"]["accuracy"] == pytest.approx(max(accs), abs=1e-6)


def test_select_without_evaluations_or_a_best_is_one_line(tmp_path, data_dir, manual_dir):
  rc, _, se = cli("onemodel-train", *_args(str(tmp_path / "x"), data_dir, manual_dir,
                                           ["TrainConfig.eval_every_steps=0"]))
  one_line_error(rc, se, "TrainConfig.select", "eval_every_steps")
  out = str(tmp_path / "plain")
  rc, _, se = cli("onemodel-train", *_args(out, data_dir, manual_dir, [
      "TrainConfig.select=''", "TrainConfig.patience=0", "TrainConfig.train_steps=2",
      "TrainConfig.final_eval_role=''"]))
  assert rc == 0, se[-2000:]
  rc, _, se = cli("onemodel-eval", f"--output_dir={out}", "--checkpoint=best",
                  f"--data_dir={data_dir}")
  one_line_error(rc, se, "no best checkpoint", "TrainConfig.select")

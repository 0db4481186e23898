"""Per-problem optimizer state in a mixture (TrainConfig.optimizer_state='per_problem'):
each problem's steps move the shared weights with Adam moments of its own gradients only,
every problem's optimizer follows the run's one learning-rate schedule, and a resumed
run restores every problem's moments (its weights equal an uninterrupted run's)."""

import os

import gin
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, cli, one_line_error, train_args
from onemodel import model as model_lib
from onemodel import trainer as trainer_lib

MIXTURE = ["joint/Mixture.name = 'mnist_fsdd'",
           "joint/Mixture.problems = ['mnist', 'fsdd']",
           "TrainConfig.problem = @joint/Mixture()"]


def _trainer(tmp_path, data_dir, manual_dir, *bindings):
  gin.parse_config_files_and_bindings([os.path.join(ROOT, "gin/models/tiny.gin")], [
      *MIXTURE, "TrainConfig.train_steps = 100", "TrainConfig.batch_size = 8",
      "TrainConfig.final_eval_role = ''", "TrainConfig.report_mfu = False",
      "TrainConfig.deterministic = True", "BackboneConfig.dropout_rate = 0.0",
      "TrainConfig.optimizer_state = 'per_problem'", *bindings])
  return trainer_lib.Trainer(str(tmp_path), data_dir, manual_dir)


def _batch(t, index):
  return next(iter(t.dataset(tf.distribute.InputContext(), t.problems[index])))


def test_a_problem_steps_with_its_own_moments(tmp_path, data_dir, manual_dir):
  # Adam's first update of a moment pair is lr * g / |g| per element (the bias-corrected
  # m / sqrt(v)); with moments shared with fsdd's earlier steps it would not be.
  lr = 1e-3
  t = _trainer(tmp_path, data_dir, manual_dir, "optimizer.name = 'adam'",
               "optimizer.clipnorm = 0.0", "learning_rate_schedule.decay = 'constant'",
               "learning_rate_schedule.warmup_steps = 0",
               f"learning_rate_schedule.learning_rate = {lr}")
  assert [p.name for p in t.problems] == ["mnist", "fsdd"]
  assert t.optimizers["mnist"] is not t.optimizers["fsdd"]
  fsdd_step = tf.function(t.step_fn(1))
  fsdd = _batch(t, 1)
  for _ in range(3):
    t.strategy.run(fsdd_step, (fsdd,))
  mnist = _batch(t, 0)
  variables = t.model.trainable_variables
  with tf.GradientTape() as tape:
    loss_sum, tokens = model_lib.token_loss(t.model(mnist, problem="mnist", training=True),
                                            mnist["targets"])
    loss = loss_sum / tokens
  grads = tape.gradient(loss, variables)
  before = [v.numpy() for v in variables]
  t.strategy.run(tf.function(t.step_fn(0)), (mnist,))
  shared = 0
  for v, w, g in zip(variables, before, grads):
    if g is None:
      continue
    g = tf.convert_to_tensor(g).numpy()
    big = np.abs(g) > 1e-5  # Adam's epsilon / sqrt(1 - beta_2) is 7e-9: negligible
    np.testing.assert_allclose((w - v.numpy())[big], lr * np.sign(g[big]), rtol=1e-3,
                               err_msg=v.path)
    shared += ("encoder_" in v.path or "decoder_" in v.path) and big.any()
  assert shared > 10  # the shared weights fsdd's steps had moved too
  assert int(t.optimizers["mnist"].iterations) == 1
  assert int(t.optimizers["fsdd"].iterations) == 3


def test_every_problem_follows_the_run_schedule(tmp_path, data_dir, manual_dir):
  t = _trainer(tmp_path, data_dir, manual_dir, "learning_rate_schedule.warmup_steps = 40",
               "learning_rate_schedule.learning_rate = 0.004")
  t.step.assign(10)  # no problem's optimizer has updated yet: their own counts are 0
  for opt in t.optimizers.values():
    assert float(opt.learning_rate) == pytest.approx(0.001)


def _run(out, data_dir, manual_dir, steps):
  return cli("onemodel-train", *train_args(out, data_dir, manual_dir, [
      *(b.replace(" = ", "=") for b in MIXTURE), "TrainConfig.optimizer_state='per_problem'",
      f"TrainConfig.train_steps={steps}", "TrainConfig.batch_size=8",
      "TrainConfig.steps_per_loop=2", "TrainConfig.checkpoint_every_steps=4",
      "TrainConfig.final_eval_role=''", "TrainConfig.deterministic=True",
      "TrainConfig.report_mfu=False", "TrainConfig.shuffle_buffer=64",
      "learning_rate_schedule.decay='constant'", "learning_rate_schedule.warmup_steps=0"]))


def _weights(run_dir, step):
  path = os.path.join(run_dir, "checkpoints", f"ckpt-{step}")
  names = [n for n, _ in tf.train.list_variables(path) if n.startswith("weights/")]
  assert names
  return {n: tf.train.load_variable(path, n) for n in names}


def test_a_resumed_run_restores_every_problems_moments(tmp_path, data_dir, manual_dir):
  whole, halves = str(tmp_path / "whole"), str(tmp_path / "halves")
  rc, so, se = _run(whole, data_dir, manual_dir, 12)
  assert rc == 0, se[-3000:]
  assert "mnist" in so and "fsdd" in so
  rc, so, se = _run(halves, data_dir, manual_dir, 6)
  assert rc == 0, se[-3000:]
  rc, so, se = _run(halves, data_dir, manual_dir, 12)
  assert rc == 0, se[-3000:]
  assert "resumed from" in so, so
  a, b = _weights(whole, 12), _weights(halves, 12)
  assert sorted(a) == sorted(b)
  assert max(float(np.max(np.abs(a[k] - b[k]))) for k in a) == 0.0


def test_unknown_optimizer_state_is_one_line(tmp_path, data_dir, manual_dir):
  rc, so, se = cli("onemodel-train", *train_args(str(tmp_path), data_dir, manual_dir, [
      "TrainConfig.problem='mnist'", "TrainConfig.optimizer_state='per_task'"]))
  line = one_line_error(rc, se, "TrainConfig.optimizer_state")
  assert "'shared', 'per_problem'" in line

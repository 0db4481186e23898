"""'Summed' mixture updates (TrainConfig.mixture_update='summed'): every update sums the
gradients of every problem with a rate above zero, each weighted by its rate; a
schedule's phases change which problems train; resume is exact; what it does not
combine with is one line."""

import os

import gin
import numpy as np
import tensorflow as tf

from conftest import ROOT, cli, one_line_error, train_args
from onemodel import mixtures
from onemodel import model as model_lib
from onemodel import trainer as trainer_lib

MIXTURE = ["joint/Mixture.name = 'mnist_fsdd'",
           "joint/Mixture.problems = ['mnist', 'fsdd']",
           "TrainConfig.problem = @joint/Mixture()",
           "TrainConfig.mixture_update = 'summed'"]


def test_phases_split_a_chunk_at_the_schedule_steps():
  names = ["a", "b", "c"]
  m = mixtures.Mixture("m", tuple(names), rates={"a": 1.0},
                       schedule=((3, "uniform"), (5, {"b": 1.0, "c": 3.0})))
  s = mixtures.Sampler(m, names, [1, 1, 1])
  phases = s.phases_in(2, 6)  # steps 2..7
  assert [count for _, count in phases] == [1, 2, 3]
  np.testing.assert_allclose(phases[0][0], [1, 0, 0])
  np.testing.assert_allclose(phases[1][0], [1 / 3] * 3)
  np.testing.assert_allclose(phases[2][0], [0, 0.25, 0.75])
  assert [c for _, c in s.phases_in(5, 4)] == [4]


def _trainer(tmp_path, data_dir, manual_dir, *bindings):
  gin.parse_config_files_and_bindings([os.path.join(ROOT, "gin/models/tiny.gin")], [
      *MIXTURE, "TrainConfig.train_steps = 100", "TrainConfig.batch_size = 8",
      "TrainConfig.final_eval_role = ''", "TrainConfig.report_mfu = False",
      "TrainConfig.deterministic = True", "BackboneConfig.dropout_rate = 0.0", *bindings])
  return trainer_lib.Trainer(str(tmp_path), data_dir, manual_dir)


def test_an_update_is_the_rate_weighted_sum_of_the_problems_gradients(
    tmp_path, data_dir, manual_dir):
  lr, rates = 0.5, (0.25, 0.75)
  t = _trainer(tmp_path, data_dir, manual_dir, "optimizer.name = 'sgd'",
               "optimizer.beta_1 = 0.0", "optimizer.clipnorm = 0.0",
               "learning_rate_schedule.decay = 'constant'",
               "learning_rate_schedule.warmup_steps = 0",
               f"learning_rate_schedule.learning_rate = {lr}")
  batches = tuple(next(iter(t.dataset(tf.distribute.InputContext(), p)))
                  for p in t.problems)
  variables = t.model.trainable_variables
  expected = [np.zeros(v.shape, np.float32) for v in variables]
  for p, batch, w in zip(t.problems, batches, rates):
    with tf.GradientTape() as tape:
      loss_sum, tokens = model_lib.token_loss(
          t.model(batch, problem=p.name, training=True), batch["targets"])
      loss = loss_sum / tokens
    for e, g in zip(expected, tape.gradient(loss, variables)):
      if g is not None:
        e -= lr * w * tf.convert_to_tensor(g).numpy()
  before = [v.numpy() for v in variables]
  stats = t.strategy.run(tf.function(t.summed_step_fn((0, 1))),
                         (batches, tf.constant(rates)))
  moved = 0
  for v, w, e in zip(variables, before, expected):
    np.testing.assert_allclose(v.numpy() - w, e, atol=2e-6, err_msg=v.path)
    moved += ("encoder_" in v.path or "decoder_" in v.path) and np.abs(e).max() > 1e-4
  assert moved > 10  # shared weights both problems' gradients reach
  assert [float(s["examples"]) for s in stats] == [8.0, 8.0]


def _run(out, data_dir, manual_dir, steps, *extra):
  return cli("onemodel-train", *train_args(out, data_dir, manual_dir, [
      *(b.replace(" = ", "=") for b in MIXTURE), "joint/Mixture.rates={'mnist': 1.0}",
      "joint/Mixture.schedule=[(3, 'uniform')]", f"TrainConfig.train_steps={steps}",
      "TrainConfig.batch_size=8", "TrainConfig.steps_per_loop=2",
      "TrainConfig.checkpoint_every_steps=4", "TrainConfig.log_every_steps=4",
      "TrainConfig.final_eval_role=''", "TrainConfig.deterministic=True",
      "TrainConfig.report_mfu=False", "TrainConfig.shuffle_buffer=64",
      # The halves' first run is 6 steps long: no schedule that depends on the length.
      "learning_rate_schedule.decay='constant'", "learning_rate_schedule.warmup_steps=0",
      *extra]))


def _checkpoint(run_dir, step):
  path = os.path.join(run_dir, "checkpoints", f"ckpt-{step}")
  names = [n for n, _ in tf.train.list_variables(path)
           if n.startswith(("weights/", "problem_steps"))]
  return {n: tf.train.load_variable(path, n) for n in names}


def test_a_resumed_summed_run_equals_the_uninterrupted_run(tmp_path, data_dir, manual_dir):
  whole, halves = str(tmp_path / "whole"), str(tmp_path / "halves")
  rc, so, se = _run(whole, data_dir, manual_dir, 10)
  assert rc == 0, se[-3000:]
  # Steps 1-3 train mnist alone (a chunk of two steps crosses into the uniform phase);
  # the log shows the share of updates each problem took part in.
  assert "step 10/10" in so and "steps mnist 100% fsdd 70%" in so, so
  for end in (6, 10):
    rc, so, se = _run(halves, data_dir, manual_dir, end)
    assert rc == 0, se[-3000:]
  assert "resumed from" in so, so
  a, b = _checkpoint(whole, 10), _checkpoint(halves, 10)
  counts = [v for k, v in a.items() if k.startswith("problem_steps")]
  assert [list(c) for c in counts] == [[10, 7]]
  assert sorted(a) == sorted(b)
  assert max(float(np.max(np.abs(a[k] - b[k]))) for k in a) == 0.0


def test_summed_with_per_problem_moments_is_one_line(tmp_path, data_dir, manual_dir):
  rc, so, se = _run(str(tmp_path), data_dir, manual_dir, 4,
                    "TrainConfig.optimizer_state='per_problem'")
  one_line_error(rc, se, "TrainConfig.mixture_update='summed'", "per_problem")


def test_unknown_mixture_update_is_one_line(tmp_path, data_dir, manual_dir):
  rc, so, se = cli("onemodel-train", *train_args(str(tmp_path), data_dir, manual_dir, [
      "TrainConfig.problem='mnist'", "TrainConfig.mixture_update='mixed'"]))
  line = one_line_error(rc, se, "TrainConfig.mixture_update")
  assert "'sampled', 'summed'" in line

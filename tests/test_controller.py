"""The controller's cadence, without TensorFlow: which steps are saved and evaluated."""

import pytest

from onemodel import controller as controller_lib
from onemodel.train_config import TrainConfig


class _Runner:
  max_chunk = 3

  def run(self, step, num_steps, signalled):
    return num_steps, [(0, {"loss_sum": 1.0 * num_steps, "tokens": 2.0 * num_steps})]


class _Progress:
  def add(self, stats, index):
    pass

  def update(self, step, loss, shown):
    return 1.0, {}


def _evaluated_steps(train_steps=8, start=0, **cfg):
  evaluated, saved = [], []
  cfg = TrainConfig(problem="mnist", train_steps=train_steps, log_every_steps=2,
                    checkpoint_every_steps=4, eval_every_steps=4, **cfg)
  ctl = controller_lib.Controller(cfg, _Runner(), [], _Progress(), saved.append,
                                  evaluated.append, lambda *a: None)
  assert ctl.run(start)[0] == train_steps
  assert saved == [s for s in range(start + 1, train_steps) if s % 4 == 0] + [train_steps]
  return evaluated


def test_the_last_step_is_evaluated_on_the_validation_split_too():
  """A validation curve (time to target, model selection) ends where training ends."""
  assert _evaluated_steps(eval_role="eval", final_eval_role="test") == [4, 8]
  assert _evaluated_steps(eval_role="eval", final_eval_role="") == [4, 8]
  # ... also when the cadence does not divide the steps, and in a resumed run.
  assert _evaluated_steps(train_steps=10, eval_role="eval") == [4, 8, 10]
  assert _evaluated_steps(train_steps=10, start=5, eval_role="eval") == [8, 10]


def test_the_last_step_is_not_evaluated_twice_on_one_split():
  assert _evaluated_steps(eval_role="eval", final_eval_role="eval") == [4]


def test_a_runner_stopped_by_a_signal_is_saved_at_the_step_it_reached():
  """The parameter-server runner may stop a chunk early once a SIGTERM came: the
  controller counts the steps it did train and saves there, not at the boundary."""
  class Stopping(_Runner):
    max_chunk = 100

    def run(self, step, num_steps, signalled):
      n = 3 if signalled() else num_steps
      return n, [(0, {"loss_sum": 1.0 * n, "tokens": 2.0 * n})]

  class Interrupts:
    received = "SIGTERM"

    def check(self, step):
      saved.append(step)
      raise RuntimeError("stopped")

  saved = []
  cfg = TrainConfig(problem="mnist", train_steps=50, log_every_steps=20,
                    checkpoint_every_steps=40)
  ctl = controller_lib.Controller(cfg, Stopping(), [], _Progress(), lambda s: None,
                                  lambda s: None, lambda *a: None, Interrupts())
  with pytest.raises(RuntimeError):
    ctl.run(4)
  assert saved == [7]

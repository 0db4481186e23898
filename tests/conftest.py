"""Shared fixtures: real data from ../shared/data, prepared once per session; gin and the
registry reset around every test; flags never parsed in library tests."""

import os
import subprocess
import sys

import gin
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANUAL_DIR = os.environ.get("ONEMODEL_TEST_MANUAL_DIR",
                            os.path.join(ROOT, "..", "shared", "data"))
BIN = os.path.dirname(sys.executable)


@pytest.fixture(autouse=True)
def _clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


@pytest.fixture(scope="session")
def manual_dir():
  if not os.path.isdir(MANUAL_DIR):
    pytest.fail(f"real test data not found at {MANUAL_DIR} (set ONEMODEL_TEST_MANUAL_DIR)")
  return os.path.abspath(MANUAL_DIR)


@pytest.fixture(scope="session")
def problems():
  from onemodel import registry
  registry.load_plugins()
  return {n: registry.get_problem(n) for n in registry.PROBLEMS.names()}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, manual_dir, problems):
  """Every built-in problem with raw files in ../shared/data prepared from them (about
  60 s, once). TFDS catalog problems (cifar10, ...) need data prepared elsewhere: CI has
  no network, so they are not prepared here (test_catalog.py checks they fail fast)."""
  import tensorflow_datasets as tfds
  tfds.disable_progress_bar()
  from onemodel import data
  d = str(tmp_path_factory.mktemp("prepared"))
  for p in problems.values():
    if not is_catalog(p):
      data.prepare(p, d, manual_dir)
  return d


def is_catalog(problem) -> bool:
  """A problem on a TFDS catalog dataset (loaded from --data_dir only)."""
  return getattr(problem.builder, "not_prepared_error", None) is not None


@pytest.fixture
def isolated_registry():
  """Test registrations vanish after the test."""
  from onemodel import registry
  registry.load_plugins()  # built-ins first: entry points are imported once a process
  saved = dict(registry.PROBLEMS._items)
  yield registry.PROBLEMS
  registry.PROBLEMS._items.clear()
  registry.PROBLEMS._items.update(saved)


def cli(tool, *args, timeout=300, cwd=ROOT):
  """Runs an installed console script (from the repository root unless `cwd`); returns
  (returncode, stdout, stderr)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run([os.path.join(BIN, tool), *args], capture_output=True, text=True,
                        timeout=timeout, cwd=cwd, env=env)
  return proc.returncode, proc.stdout, proc.stderr


def tiny_gin(problem, steps, extra=()):
  params = [f"TrainConfig.problem='{problem}'", f"TrainConfig.train_steps={steps}",
            "TrainConfig.batch_size=8", "TrainConfig.log_every_steps=2",
            "TrainConfig.steps_per_loop=2", "TrainConfig.eval_max_examples=16",
            "TrainConfig.eval_batch_size=16", "TrainConfig.checkpoint_every_steps=2",
            *extra]
  return ["--gin_file=gin/models/tiny.gin"] + [f"--gin_param={p}" for p in params]


def train_args(out, data_dir, manual_dir, params):
  """onemodel-train's flags for a tiny.gin run into `out` with these gin bindings."""
  return (["--gin_file=gin/models/tiny.gin", f"--output_dir={out}",
           f"--data_dir={data_dir}", f"--manual_dir={manual_dir}"]
          + [f"--gin_param={p}" for p in params])


def one_line_error(rc, se, *needles):
  """A user mistake: non-zero exit, no traceback, exactly one 'TOOL: error: ...' line
  containing every needle. Returns that line."""
  assert rc != 0
  assert "Traceback" not in se, se[-2000:]
  lines = [l for l in se.splitlines() if l.startswith("onemodel-") and ": error: " in l]
  assert len(lines) == 1, se[-2000:]
  for n in needles:
    assert n in lines[0], lines[0]
  return lines[0]

"""Conformance over every registered problem, with the public test kit plugin authors use
(`onemodel.testing.check_problem`): raw examples match the feature specs, a real batch
has static shapes, the loss is finite, and the train step runs eagerly, under
tf.function and under XLA. (Evaluation and export are covered per modality in
test_cli_e2e.py and test_export.py.)"""

import pytest

from conftest import is_catalog
from onemodel import registry
from onemodel import testing

registry.load_plugins()
PROBLEMS = registry.PROBLEMS.names()


@pytest.mark.parametrize("name", PROBLEMS)
def test_problem_conformance(name, data_dir, manual_dir):
  if is_catalog(registry.get_problem(name)):
    pytest.skip("TFDS catalog dataset: CI has no network to prepare it (test_catalog.py "
                "checks that it fails fast with one line)")
  seconds = testing.check_problem(name, manual_dir, data_dir, evaluate=False, export=False)
  assert {"prepare", "raw examples", "batch", "train step (XLA)"} <= set(seconds)

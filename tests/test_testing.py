"""The public test kit on deliberately broken plugins: it names the problem, the stage
and the plugin's own file and line."""

import textwrap

import pytest

from onemodel import registry
from onemodel import testing

HEADER = '''
import dataclasses
from onemodel import problem, registry
mnist = registry.get_problem("mnist")
'''


def _check_broken(tmp_path, manual_dir, data_dir, name, body):
  d = tmp_path / f"plug_{name}"
  d.mkdir()
  (d / "broken.py").write_text(HEADER + textwrap.dedent(body))
  with pytest.raises(testing.ProblemCheckError) as e:
    # These plugins reuse mnist's builder: its data is prepared once in data_dir.
    testing.check_problem(name, manual_dir, data_dir, usr_dir=str(d),
                          jit_compile=False, evaluate=False, export=False)
  return str(e.value), d / "broken.py"


@pytest.mark.usefixtures("isolated_registry")
def test_kit_points_at_a_to_raw_with_wrong_keys(tmp_path, manual_dir, data_dir):
  msg, f = _check_broken(tmp_path, manual_dir, data_dir, "broken_keys", '''
      def to_raw(ex):
        return {"input": ex["image"], "targets": ex["label"]}
      problem.register(dataclasses.replace(mnist, name="broken_keys", to_raw=to_raw))
  ''')
  assert "problem broken_keys: raw examples" in msg
  assert "to_raw returned ['input', 'targets'], expected keys ['inputs', 'targets']" in msg
  assert f"({f}:6)" in msg, msg


@pytest.mark.usefixtures("isolated_registry")
def test_kit_points_at_too_few_class_names(tmp_path, manual_dir, data_dir):
  msg, f = _check_broken(tmp_path, manual_dir, data_dir, "broken_classes", '''
      targets = problem.FeatureSpec("label", length=2, class_names=("0", "1", "2"))
      problem.register(dataclasses.replace(mnist, name="broken_classes", targets=targets))
  ''')
  assert "problem broken_classes: raw examples" in msg and "class_names" in msg, msg


@pytest.mark.usefixtures("isolated_registry")
def test_kit_points_at_the_line_that_raises(tmp_path, manual_dir, data_dir):
  msg, f = _check_broken(tmp_path, manual_dir, data_dir, "broken_raise", '''
      def to_raw(ex):
        scale = {"gray": 1}
        return {"inputs": ex["image"] * scale["grey"], "targets": ex["label"]}
      problem.register(dataclasses.replace(mnist, name="broken_raise", to_raw=to_raw))
  ''')
  assert "problem broken_raise: raw examples failed: KeyError: 'grey'" in msg
  assert f"({f}:8)" in msg, msg

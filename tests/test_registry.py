import os
import textwrap

import pytest

from onemodel import registry
from onemodel.errors import UserError


def test_register_get_and_names():
  r = registry.Registry("thing")
  r.register("alpha_1", 1)
  assert r.get("alpha_1") == 1
  assert r.names() == ["alpha_1"]


@pytest.mark.parametrize("bad", ["Mnist", "multi-30k", "a b", "", "ü"])
def test_invalid_names_rejected(bad):
  with pytest.raises(ValueError, match="invalid"):
    registry.Registry("thing").register(bad, 1)


def test_duplicate_raises():
  r = registry.Registry("thing")
  r.register("a", 1)
  with pytest.raises(ValueError, match="already registered"):
    r.register("a", 2)


def test_unknown_lists_closest():
  r = registry.Registry("problem")
  for n in ("mnist", "fsdd", "multi30k_en_de"):
    r.register(n, n)
  with pytest.raises(UserError) as e:
    r.get("mnsit")
  assert "unknown problem 'mnsit'" in str(e.value)
  assert "closest: mnist" in str(e.value)


def test_builtin_problems_come_from_entry_points(problems):
  assert {"mnist", "fsdd", "multi30k_en_de", "tinyshakespeare"} <= set(problems)
  assert problems["fsdd"].inputs.modality == "speech"
  assert problems["tinyshakespeare"].inputs is None


def test_usr_dir_plugin_registers(tmp_path, isolated_registry):
  (tmp_path / "my_problem.py").write_text(textwrap.dedent("""
      import dataclasses
      from onemodel import registry
      mnist = registry.get_problem('mnist')
      registry.register_problem(dataclasses.replace(mnist, name='my_digits'))
  """))
  registry.load_plugins()
  names = registry.import_usr_dir(str(tmp_path))
  assert names == [f"{tmp_path.name}.my_problem"]  # the directory is a real package
  assert "my_digits" in registry.PROBLEMS


def test_usr_dir_import_error_names_plugin(tmp_path, isolated_registry):
  (tmp_path / "broken.py").write_text("import no_such_module_xyz\n")
  with pytest.raises(UserError) as e:
    registry.import_usr_dir(str(tmp_path))
  msg = str(e.value)
  assert "broken.py" in msg and "no_such_module_xyz" in msg


def test_usr_dir_missing(tmp_path):
  with pytest.raises(UserError, match="not a directory"):
    registry.import_usr_dir(str(tmp_path / "nope"))


def test_entry_point_import_error_names_plugin(monkeypatch):
  class BrokenEntryPoint:
    name = "broken_plugin"
    value = "no_such_package_xyz.problems"

    def load(self):
      raise ImportError("No module named 'no_such_package_xyz'")

  from onemodel import plugins
  monkeypatch.setattr(plugins.importlib.metadata, "entry_points",
                      lambda group: [BrokenEntryPoint()])
  with pytest.raises(UserError) as e:
    registry.load_entry_points()
  assert "plugin 'broken_plugin' failed to import" in str(e.value)
  assert "no_such_package_xyz" in str(e.value)

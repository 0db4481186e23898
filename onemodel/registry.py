"""The problem registry: names to fully specified values, plus plugin discovery.

As in seqio, the registry holds values (a `Problem`), not classes with hidden
hyper-parameter side effects (the T2T counter-example). A duplicate name raises; an
unknown name raises and lists the closest registered names.

Plugins are found two ways, both explicit and both loud on failure:
* installed packages declaring the entry-point group `onemodel.problems` (the built-in
  `problems/` package is discovered exactly this way);
* `--usr_dir=PATH`: every `*.py` module in PATH is imported (the T2T habit).
An ImportError in a plugin is re-raised as a `UserError` naming the plugin; T2T swallowed
these and registrations silently vanished (T2T issues #238, #1741, #1762).
"""

import difflib
import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import traceback
from typing import Dict, Generic, List, TypeVar

from onemodel.errors import UserError

ENTRY_POINT_GROUP = "onemodel.problems"
_NAME_RE = re.compile(r"^[a-z0-9_]+$")
T = TypeVar("T")


class Registry(Generic[T]):
  """A name -> value map where duplicates and unknown names are loud."""

  def __init__(self, kind: str):
    self.kind = kind
    self._items: Dict[str, T] = {}

  def register(self, name: str, value: T) -> T:
    if not isinstance(name, str) or not _NAME_RE.match(name):
      raise ValueError(
          f"{self.kind} name {name!r} is invalid: use lowercase letters, digits and "
          "underscores only (^[a-z0-9_]+$)")
    if name in self._items:
      raise ValueError(f"{self.kind} {name!r} is already registered")
    self._items[name] = value
    return value

  def unregister(self, name: str) -> None:
    self._items.pop(name, None)

  def closest(self, name: str) -> List[str]:
    return difflib.get_close_matches(name, list(self._items), n=3, cutoff=0.4)

  def get(self, name: str) -> T:
    if name not in self._items:
      close = self.closest(name)
      hint = (f"; closest: {', '.join(close)}" if close else
              f"; registered: {', '.join(sorted(self._items)) or 'none'}")
      raise UserError(f"unknown {self.kind} {name!r}{hint}")
    return self._items[name]

  def names(self) -> List[str]:
    return sorted(self._items)

  def __contains__(self, name: str) -> bool:
    return name in self._items


PROBLEMS: "Registry" = Registry("problem")
MIXTURES: "Registry" = Registry("mixture")  # see onemodel.mixtures
_loaded_modules = set()


def _import_plugin(plugin_name: str, import_fn):
  try:
    return import_fn()
  except UserError:
    raise
  except Exception as e:  # ImportError, SyntaxError, errors at registration time.
    where = traceback.extract_tb(e.__traceback__)[-1]
    raise UserError(
        f"plugin {plugin_name!r} failed to import: {type(e).__name__}: {e} "
        f"({os.path.basename(where.filename)}:{where.lineno})") from e


def load_entry_points() -> None:
  """Imports every module declared in the `onemodel.problems` entry-point group."""
  for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
    if ep.value in _loaded_modules:
      continue
    _import_plugin(ep.name, ep.load)
    _loaded_modules.add(ep.value)


def import_usr_dir(path: str) -> List[str]:
  """Imports every `*.py` module of a user directory; returns the module names."""
  path = os.path.abspath(os.path.expanduser(path))
  if not os.path.isdir(path):
    raise UserError(f"--usr_dir {path} is not a directory")
  names = []
  for fname in sorted(os.listdir(path)):
    if not fname.endswith(".py") or fname.startswith("_"):
      continue
    mod_name = "onemodel_usr." + fname[:-3]
    fpath = os.path.join(path, fname)
    if fpath in _loaded_modules:
      continue

    def _load(fpath=fpath, mod_name=mod_name):
      spec = importlib.util.spec_from_file_location(mod_name, fpath)
      module = importlib.util.module_from_spec(spec)
      sys.modules[mod_name] = module
      spec.loader.exec_module(module)
      return module

    _import_plugin(fpath, _load)
    _loaded_modules.add(fpath)
    names.append(mod_name)
  return names


def load_plugins(usr_dir: str = "") -> None:
  load_entry_points()
  if usr_dir:
    import_usr_dir(usr_dir)


def get_problem(name: str):
  return PROBLEMS.get(name)


def register_problem(problem):
  if problem.name in MIXTURES:
    raise ValueError(f"problem {problem.name!r}: a mixture of that name is registered")
  return PROBLEMS.register(problem.name, problem)


def get_task(name: str):
  """A problem or a mixture by name; unknown names list the closest of both."""
  if name in MIXTURES:
    return MIXTURES.get(name)
  if name in PROBLEMS:
    return PROBLEMS.get(name)
  close = difflib.get_close_matches(name, PROBLEMS.names() + MIXTURES.names(), n=3,
                                    cutoff=0.4)
  hint = f"; closest: {', '.join(close)}" if close else \
      f"; registered: {', '.join(PROBLEMS.names() + MIXTURES.names()) or 'none'}"
  raise UserError(f"unknown problem {name!r}{hint}")

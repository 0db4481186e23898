"""The problem registry: names to fully specified values, plus plugin discovery.

As in seqio, the registry holds values (a `Problem`), not classes with hidden
hyper-parameter side effects (the T2T counter-example). A duplicate name raises; an
unknown name raises and lists the closest registered names.

Plugins (entry points and `--usr_dir`) are found by `onemodel.plugins`; an unknown
problem name says that a plugin may be missing.
"""

import difflib
import re
from typing import Dict, Generic, List, TypeVar

from onemodel import plugins
from onemodel.errors import UserError

ENTRY_POINT_GROUP = plugins.ENTRY_POINT_GROUP
_NAME_RE = re.compile(r"^[a-z0-9_]+$")
T = TypeVar("T")


class Registry(Generic[T]):
  """A name -> value map where duplicates and unknown names are loud."""

  def __init__(self, kind: str, hint: str = ""):
    self.kind = kind
    self.hint = hint  # appended to "unknown name" errors
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
      raise UserError(f"unknown {self.kind} {name!r}{hint}"
                      + (f"; {self.hint}" if self.hint else ""))
    return self._items[name]

  def names(self) -> List[str]:
    return sorted(self._items)

  def __contains__(self, name: str) -> bool:
    return name in self._items


PROBLEMS: "Registry" = Registry("problem", hint=plugins.USR_DIR_HINT)
MIXTURES: "Registry" = Registry("mixture")  # see onemodel.mixtures


def load_entry_points() -> None:
  plugins.load_entry_points()


def import_usr_dir(path: str) -> List[str]:
  return plugins.import_usr_dir(path)


def load_plugins(usr_dir: str = "", run_dir: str = "") -> None:
  """Entry-point plugins, `usr_dir`, and the usr_dirs the run in `run_dir` recorded."""
  plugins.load(usr_dir, run_dir)


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
  raise UserError(f"unknown problem {name!r}{hint}; {plugins.USR_DIR_HINT}")

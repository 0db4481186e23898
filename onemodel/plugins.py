"""Plugins: the modules that register problems, and the record a run keeps of them.

Two ways in, both explicit and both loud on failure:

* installed packages declaring the entry-point group `onemodel.problems` (the built-in
  `problems/` package is found exactly this way);
* `--usr_dir=DIR` (the Tensor2Tensor habit): DIR is imported as a real Python package
  named after the directory (`my_problems/` -> `my_problems`), then every `*.py` module
  in it. Because the package really exists, code that imports a module by name works:
  TFDS imports a builder's module to find its files, and a plugin's files import each
  other (`from my_problems import common`, `from . import common`, or plain
  `import common`). If the directory's name is taken by another module, the package is
  `onemodel_usr_<name>` instead.

A plugin that fails to import stops the command with one line naming the plugin's own
file and line (not importlib's frames); Tensor2Tensor swallowed these errors and
registrations silently vanished (T2T issues #238, #1741, #1762).

A training run writes the `--usr_dir`s it used to `OUTPUT_DIR/plugins.json`
(`write_record`), and every later command on the run (`load(run_dir=...)`) imports them
again, so `onemodel-eval --output_dir=RUN` needs no `--usr_dir`.
"""

import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
import traceback
from typing import Dict, List, Optional, Sequence

from onemodel.errors import UserError

ENTRY_POINT_GROUP = "onemodel.problems"
RECORD_FILE = "plugins.json"
USR_DIR_HINT = ("a problem defined in a plugin directory needs --usr_dir=DIR (or an "
                f"installed package declaring the {ENTRY_POINT_GROUP!r} entry point)")

_loaded_entry_points = set()
_usr_packages: Dict[str, str] = {}   # abs usr_dir -> package name, in import order
_loaded_files = set()


def _where(exc: BaseException, roots: Sequence[str]) -> str:
  """'file:line' of the plugin's own code that raised `exc`: a SyntaxError's own
  location, else the innermost traceback frame inside `roots` (the plugin's directory
  or package), else the innermost frame that is not the import machinery."""
  if isinstance(exc, SyntaxError) and exc.filename:
    return f"{exc.filename}:{exc.lineno}"
  frames = traceback.extract_tb(exc.__traceback__)
  roots = [os.path.abspath(r) + os.sep for r in roots if r]
  own = [f for f in frames if any(os.path.abspath(f.filename).startswith(r) for r in roots)]
  if not own:
    own = [f for f in frames if not f.filename.startswith("<frozen")
           and "importlib" not in f.filename and f.filename != __file__]
  f = (own or frames)[-1] if (own or frames) else None
  return f"{f.filename}:{f.lineno}" if f else "?"


def _import(label: str, fn, roots: Sequence[str]):
  try:
    return fn()
  except UserError as e:  # already one line (e.g. a bad FeatureSpec): add where
    if "failed to import" in str(e) or not roots:
      raise
    raise UserError(f"{e} ({_where(e, roots)})") from e
  except Exception as e:  # ImportError, SyntaxError, errors at registration time.
    raise UserError(f"plugin {label} failed to import: {type(e).__name__}: {e} "
                    f"({_where(e, roots)})") from e


def load_entry_points() -> List[str]:
  """Imports every module declared in the `onemodel.problems` entry-point group."""
  loaded = []
  for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
    if ep.value in _loaded_entry_points:
      continue
    module = ep.value.split(":")[0]
    spec = importlib.util.find_spec(module.split(".")[0]) if module else None
    roots = list(spec.submodule_search_locations or [os.path.dirname(spec.origin)]) \
        if spec is not None and (spec.submodule_search_locations or spec.origin) else []
    _import(repr(ep.name), ep.load, roots)
    _loaded_entry_points.add(ep.value)
    loaded.append(ep.value)
  return loaded


class _SiblingFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Lets `import common` inside a usr_dir plugin find the sibling `common.py`, as the
  SAME module object as `<package>.common` (a second copy would register its problems
  twice). Sits at the end of sys.meta_path: installed modules and the standard library
  always win over a plugin file of the same name."""

  def find_spec(self, fullname, path=None, target=None):
    if "." in fullname:
      return None
    for usr_dir, package in _usr_packages.items():
      if (os.path.isfile(os.path.join(usr_dir, fullname + ".py")) or
          os.path.isdir(os.path.join(usr_dir, fullname))):
        return importlib.machinery.ModuleSpec(fullname, self,
                                              loader_state=f"{package}.{fullname}")
    return None

  def create_module(self, spec):
    return importlib.import_module(spec.loader_state)

  def exec_module(self, module):
    pass  # already executed under its package name


_SIBLINGS = _SiblingFinder()


class _NoInitLoader(importlib.machinery.SourceFileLoader):
  """The loader of a usr_dir without __init__.py: nothing to run, but file-backed."""

  def exec_module(self, module):
    pass


def _package_name(path: str) -> str:
  base = re.sub(r"\W", "_", os.path.basename(path)) or "usr"
  if base[0].isdigit():
    base = "_" + base
  for name in [base] + [f"onemodel_usr_{base}" + (f"_{i}" if i else "") for i in range(99)]:
    mod = sys.modules.get(name)
    if mod is not None:
      if list(getattr(mod, "__path__", [])) == [path]:
        return name
      continue
    try:
      spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
      spec = None
    if spec is None:
      return name
  raise UserError(f"--usr_dir {path}: no free package name for it")


def _import_package(path: str) -> str:
  """Creates the package for `path` in sys.modules (running its __init__.py if any)."""
  name = _package_name(path)
  if name in sys.modules:
    return name
  init = os.path.join(path, "__init__.py")
  # A file-backed package spec in both cases: TFDS reads a builder's package resources
  # through importlib.resources, which needs a loader with a resource reader (a bare
  # namespace spec raises "Invalid path" there).
  loader = (importlib.machinery.SourceFileLoader if os.path.isfile(init) else
            _NoInitLoader)(name, init)
  spec = importlib.util.spec_from_file_location(name, init, loader=loader,
                                                submodule_search_locations=[path])
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  _usr_packages[path] = name
  if _SIBLINGS not in sys.meta_path:
    sys.meta_path.append(_SIBLINGS)
  try:
    _import(init, lambda: spec.loader.exec_module(module), [path])
  except UserError:
    del sys.modules[name]
    del _usr_packages[path]
    raise
  return name


def import_usr_dir(path: str) -> List[str]:
  """Imports DIR as a package and every `*.py` module in it; returns the module names."""
  path = os.path.abspath(os.path.expanduser(path)).rstrip(os.sep) or os.sep
  if not os.path.isdir(path):
    raise UserError(f"--usr_dir {path} is not a directory")
  package = _import_package(path)
  names = []
  for fname in sorted(os.listdir(path)):
    if not fname.endswith(".py") or fname.startswith("_"):
      continue
    fpath = os.path.join(path, fname)
    mod_name = f"{package}.{fname[:-3]}"
    if fpath not in _loaded_files:
      _import(fpath, lambda mod_name=mod_name: importlib.import_module(mod_name), [path])
      _loaded_files.add(fpath)
    names.append(mod_name)
  return names


def usr_dirs() -> List[str]:
  """The --usr_dirs imported in this process, in order."""
  return list(_usr_packages)


def write_record(output_dir: str) -> str:
  """Writes the plugins this process loaded to OUTPUT_DIR/plugins.json; returns the path.
  Call it when a run starts, so later commands on the run find the same problems."""
  from onemodel import fileio  # tf.io.gfile, atomic: the run may be on GCS
  path = os.path.join(output_dir, RECORD_FILE)
  record = {"usr_dirs": usr_dirs(), "entry_points": sorted(_loaded_entry_points)}
  fileio.atomic_write_json(path, record)
  return path


def read_record(run_dir: str) -> Optional[dict]:
  """The plugins a run recorded, or None if it recorded none (or is not a run)."""
  import tensorflow as tf
  path = os.path.join(run_dir, RECORD_FILE)
  if not run_dir or not tf.io.gfile.exists(path):
    return None
  try:
    with tf.io.gfile.GFile(path) as f:
      record = json.loads(f.read())
    if not isinstance(record.get("usr_dirs"), list):
      raise ValueError("no 'usr_dirs' list")
  except ValueError as e:
    raise UserError(f"{path} is not a plugin record: {e}") from e
  return record


def load(usr_dir: str = "", run_dir: str = "") -> None:
  """Imports the entry-point plugins, `usr_dir`, and the usr_dirs recorded by the run in
  `run_dir` (an explicit `usr_dir` replaces recorded ones: the directory moved)."""
  load_entry_points()
  if usr_dir:
    import_usr_dir(usr_dir)
    return
  record = read_record(run_dir) if run_dir else None
  for d in (record or {}).get("usr_dirs", []):
    if not os.path.isdir(d):
      raise UserError(f"run {run_dir} used plugin directory {d} "
                      f"({os.path.join(run_dir, RECORD_FILE)}), which no longer exists; "
                      "pass --usr_dir=ITS_NEW_PATH")
    import_usr_dir(d)

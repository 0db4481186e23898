"""Where a TFDS builder finds its raw files: the manual directory, else the upstream URLs.

`onemodel.data.prepare` checks the manual directory first and only lets TFDS download
when the user passed `--download` and the builder has upstream URLs (`HAS_DOWNLOAD`);
checksums of upstream files live in problems/checksums.tsv, which TFDS verifies on
download.

Bad raw data: a corrupt example is skipped and counted (`SkipCounter`) with its file and
the reason; a file that cannot be read as a whole (truncated gzip, an npz with the wrong
arrays) is one `UserError` naming the file (`whole_file_error`).
"""

import contextlib
import functools
import gzip
import inspect
import io
import os
import sys
import tempfile
import zlib
from typing import Dict

from onemodel.errors import UserError

# What reading a whole (possibly gzipped) file raises when it is truncated or corrupt.
READ_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, OSError)


def whole_file_error(path: str, e: Exception) -> UserError:
  return UserError(f"{path} is corrupt or truncated: {type(e).__name__}: {e}")


def open_text(path: str):
  """A text stream of a plain or gzipped file. Bytes that are not UTF-8 become lone
  surrogates (errors='surrogateescape'), so one bad line is found (`is_utf8`) and
  skipped instead of failing the whole file."""
  raw = gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
  return io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")


def read_text(path: str) -> str:
  """The whole text of a plain or gzipped file (see `open_text`); a truncated or
  corrupt file is a `UserError` naming it."""
  try:
    with open_text(path) as f:
      return f.read()
  except READ_ERRORS as e:
    raise whole_file_error(path, e) from e


def utf8_error(text: str) -> str:
  """'' if `text` (read by `open_text`) was valid UTF-8, else the reason it was not."""
  try:
    text.encode("utf-8")
    return ""
  except UnicodeEncodeError as e:
    return f"not UTF-8 (character {e.start})"


@contextlib.contextmanager
def explained(problem_name: str, raw_dir: str):
  """Turns TFDS's failure on a split left empty (every raw example skipped, or none
  there) into one line naming the problem and its raw directory."""
  try:
    yield
  except AssertionError as e:
    if "No examples were yielded" not in str(e):
      raise
    raise UserError(f"problem {problem_name}: {str(e).splitlines()[0]} (raw data in "
                    f"{raw_dir})") from e


def parse_manual_dirs(manual_dir: str):
  """`--manual_dir` -> (root or None, {problem: dir}). It is a root holding one
  subdirectory per dataset (the layout of ../shared/data), a comma-separated list of
  PROBLEM=DIR (DIR holds that problem's raw files themselves), or a root followed by
  such overrides: `--manual_dir=/data,fsdd=/recordings/fsdd`."""
  root, per = None, {}
  for part in filter(None, (p.strip() for p in (manual_dir or "").split(","))):
    name, eq, path = part.partition("=")
    if eq and name and "/" not in name and os.sep not in name:
      per[name] = os.path.abspath(os.path.expanduser(path))
    elif root is None:
      root = os.path.abspath(os.path.expanduser(part))
    else:
      raise UserError(f"--manual_dir {manual_dir!r}: two roots ({root}, {part}); give one "
                      "root and PROBLEM=DIR pairs")
  return root, per


def raw_dir(problem, manual_dir: str) -> str:
  """Where `problem` reads its raw files: its own PROBLEM=DIR, else ROOT/raw_subdir."""
  root, per = parse_manual_dirs(manual_dir)
  if problem.name in per:
    return per[problem.name]
  if root is None:
    raise UserError(f"problem {problem.name}: --manual_dir gives directories for "
                    f"{', '.join(per)} only; add {problem.name}=DIR or a root directory")
  return os.path.join(root, problem.raw_subdir)


def local_or_download(dl_manager, files: Dict[str, str]) -> Dict[str, str]:
  """files: local file name -> upstream URL. Returns local name -> path."""
  manual = getattr(dl_manager, "_manual_dir", None)
  if manual and all(os.path.exists(os.path.join(manual, f)) for f in files):
    return {f: os.path.join(manual, f) for f in files}
  paths = dl_manager.download({f: url for f, url in files.items()})
  return {f: os.fspath(p) for f, p in paths.items()}


class SkipCounter:
  """Counts corrupt raw examples a builder skipped, and says so once per split."""

  def __init__(self, what: str):
    self.what = what
    self.count = 0
    self.reasons = []

  def skip(self, where: str, reason: str):
    reason = reason.strip() or "unreadable"  # an exception with no message says nothing
    self.count += 1
    if len(self.reasons) < 3:
      self.reasons.append(f"{where}: {reason}")

  def report(self):
    import logging
    if self.count:
      msg = (f"{self.what}: skipped {self.count} corrupt example(s), e.g. "
             + "; ".join(self.reasons))
      logging.warning(msg)
      print(f"onemodel: {msg}", flush=True)


def preparation(fn):
  """Wraps a `fn(problem, data_dir, ...)` that prepares data so that it leaves nothing
  behind but its result:
  - Python's temporary directory is a private one, removed after: a TFDS builder made
    for a dataset not prepared yet creates an empty `tmp*tfds` directory it never
    removes (`DatasetInfo.initialize_from_bucket`, tfds 4.9), two per preparation;
  - when it fails, the directories it created under `data_dir` that are still empty
    (TFDS's `downloads/extracted`, the dataset's own directory) are removed;
  - TFDS's "Downloading and preparing dataset Unknown size ..." and "... downloaded and
    prepared to ..." lines are not shown: onemodel prepares from local files, and the
    commands say what they prepared."""
  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    data_dir = inspect.signature(fn).bind(*args, **kwargs).arguments["data_dir"]
    before = set(_local_dirs(data_dir))
    saved = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="onemodel-prepare-") as scratch, \
        contextlib.redirect_stdout(_WithoutLines(sys.stdout, _TFDS_NOTICES)):
      tempfile.tempdir = scratch
      try:
        return fn(*args, **kwargs)
      except BaseException:
        for d in sorted(set(_local_dirs(data_dir)) - before, reverse=True):  # deepest first
          if not os.listdir(d):
            os.rmdir(d)
        raise
      finally:
        tempfile.tempdir = saved
  return wrapped


def _local_dirs(root: str) -> list:
  """Every directory under a local `root`, `root` included ([] if not local or absent)."""
  if "://" in root or not os.path.isdir(root):
    return []
  return [d for d, _, _ in os.walk(root)]


# The start of TFDS's own lines around a preparation (dataset_builder.py, tfds 4.9).
_TFDS_NOTICES = ("Downloading and preparing dataset", "Dataset onemodel_")


class _WithoutLines(io.TextIOBase):
  """A text stream passing everything to `target` except lines starting with one of
  `prefixes` (print writes a line and its newline in two calls: both are dropped)."""

  def __init__(self, target, prefixes):
    super().__init__()
    self.target, self.prefixes, self.dropped = target, prefixes, False

  def write(self, s):
    if s.lstrip("\x1b[0123456789;m").startswith(self.prefixes) or \
        (self.dropped and s == "\n"):
      self.dropped = s != "\n"
      return len(s)
    self.dropped = False
    return self.target.write(s)

  def flush(self):
    self.target.flush()

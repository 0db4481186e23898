"""Tables with named columns: TSV, CSV or JSON lines (plain or gzipped) -> a problem.

    sources.Delimited(files={"train": "train.tsv", "validation": "dev.tsv"},
                      columns={"inputs": "sentence", "targets": "label"})

A column is named by the file's header row (for JSON lines: the object's key). A role's
column may list alternatives, ("sentence", "content"), when the files of one dataset
name it differently (SST-2 does). A value that is a file path (an image, a WAV: a
captioning list, an audio manifest) is relative to the table's directory.

TSV is read as GLUE's TSVs are written: one row a line, fields split on tabs, no
quoting. CSV follows RFC 4180 quoting (Python's csv module)."""

import csv
import dataclasses
import json
import os
from typing import Any, Iterator, Mapping

from onemodel import rawdata
from onemodel.errors import UserError
import onemodel.sources.base as base
import onemodel.sources.values as values

FORMATS = ("tsv", "csv", "jsonl")


def _format(path: str, given: str) -> str:
  if given:
    if given not in FORMATS:
      raise ValueError(f"format {given!r}: use one of {', '.join(FORMATS)}")
    return given
  stem = path[:-3] if path.endswith(".gz") else path
  ext = os.path.splitext(stem)[1].lstrip(".").lower()
  ext = {"json": "jsonl", "ndjson": "jsonl", "txt": "tsv"}.get(ext, ext)
  if ext not in FORMATS:
    raise ValueError(f"{path}: cannot tell the format from the extension; pass format=")
  return ext


def _utf8(s: str) -> str:
  why = rawdata.utf8_error(s)
  if why:
    raise values.BadValue(why)
  return s


def _rows(path: str, fmt: str) -> Iterator[tuple]:
  """(line number, {column: value}) rows, or (line, BadValue) for an unreadable row."""
  with rawdata.open_text(path) as f:
    if fmt == "jsonl":
      for i, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          obj = json.loads(_utf8(line))
          if not isinstance(obj, dict):
            raise values.BadValue(f"a JSON {type(obj).__name__}, not an object")
          yield i, obj
        except ValueError as e:  # json.JSONDecodeError and BadValue
          yield i, e if isinstance(e, values.BadValue) else values.BadValue(f"not JSON ({e.msg})")
      return
    if fmt == "csv":
      reader = csv.reader(f)
      lines = ((reader.line_num, row) for row in reader)
    else:
      lines = ((i, line.rstrip("\r\n").split("\t")) for i, line in enumerate(f, 1))
    header = None
    for i, row in lines:
      if header is None:
        first = "\t".join(row)
        why = rawdata.utf8_error(first) or ("NUL bytes (UTF-16?)" if "\x00" in first else "")
        if why:  # a header that does not decode: the whole file is in another encoding
          raise UserError(f"{path} is not UTF-8 text (header row: {why})")
        header = [c.strip() for c in row]
        continue
      if row == [""] or not row:
        continue
      if len(row) != len(header):
        yield i, values.BadValue(f"{len(row)} fields, the header has {len(header)}")
        continue
      yield i, dict(zip(header, row))
    if header is None:
      raise UserError(f"{path} is empty: expected a header row naming the columns")


def _column(path: str, header, wanted) -> str:
  names = (wanted,) if isinstance(wanted, str) else tuple(wanted)
  for n in names:
    if n in header:
      return n
  raise UserError(f"{path} has no column {' or '.join(map(repr, names))} (its columns: "
                  f"{', '.join(header)})")


@dataclasses.dataclass(frozen=True)
class Delimited(base.Source):
  """files: split -> table file (relative to the raw dir). columns: role ('inputs',
  'targets') -> column name or alternatives. format: 'tsv', 'csv' or 'jsonl' (default:
  from the extension, .gz stripped)."""
  files: Mapping[str, str]
  columns: Mapping[str, Any]
  format: str = ""

  def splits(self):
    return tuple(self.files)

  def raw_files(self):
    return tuple(self.files.values())

  def describe(self):
    cols = ", ".join(f"{r}={c}" for r, c in self.columns.items())
    return f"table {', '.join(self.files.values())} ({cols})"

  def examples(self, split, raw_dir, specs, skipped):
    path = os.path.join(raw_dir, self.files[split])
    fmt = _format(path, self.format)
    fname = os.path.basename(path)
    cols = None
    try:
      for line, row in _rows(path, fmt):
        where = f"{fname}:{line}"
        if isinstance(row, values.BadValue):
          skipped.skip(where, str(row))
          continue
        if cols is None or fmt == "jsonl":
          header = list(row)
          try:
            cols = {role: _column(path, header, self.columns[role]) for role in specs}
          except UserError as e:
            if fmt != "jsonl":
              raise
            skipped.skip(where, str(e).split(" has ", 1)[1])
            continue
        try:
          ex = {role: base.convert(_utf8(row[col]) if isinstance(row[col], str)
                                   else row[col], specs[role], os.path.dirname(path))
                for role, col in cols.items()}
        except values.BadValue as e:
          skipped.skip(where, str(e))
          continue
        yield where, ex
    except rawdata.READ_ERRORS as e:
      raise rawdata.whole_file_error(path, e) from e

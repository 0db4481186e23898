"""Parallel text files, one sentence a line, aligned by line (plain or gzipped): the
layout of Multi30k, WMT and most translation corpora -> text -> text.

    sources.ParallelText({"train": ("train.en.gz", "train.de.gz"),
                          "validation": ("val.en", "val.de")})

A pair with an empty side or a side that is not UTF-8 is skipped and counted; two files
of different lengths, or a truncated gzip, are one error naming them."""

import dataclasses
import os
from typing import Mapping, Tuple

from onemodel import rawdata
from onemodel.errors import UserError
import onemodel.sources.base as base
import onemodel.sources.values as values


def _lines(path: str):
  lines = rawdata.read_text(path).split("\n")
  if lines and lines[-1] == "":
    lines.pop()  # the final newline
  return lines


@dataclasses.dataclass(frozen=True)
class ParallelText(base.Source):
  """files: split -> (source file, target file), relative to the raw dir."""
  files: Mapping[str, Tuple[str, str]]

  def splits(self):
    return tuple(self.files)

  def raw_files(self):
    return tuple(f for pair in self.files.values() for f in pair)

  def describe(self):
    return "parallel text " + ", ".join(f"{a} -> {b}" for a, b in self.files.values())

  def examples(self, split, raw_dir, specs, skipped):
    src_path, tgt_path = (os.path.join(raw_dir, f) for f in self.files[split])
    src, tgt = _lines(src_path), _lines(tgt_path)
    if len(src) != len(tgt):
      raise UserError(f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}: "
                      "parallel files must be aligned by line")
    names = [os.path.basename(p) for p in (src_path, tgt_path)]
    for i, pair in enumerate(zip(src, tgt)):
      try:
        ex = {}
        for role, name, value in zip(("inputs", "targets"), names, pair):
          why = rawdata.utf8_error(value)
          if why:
            raise values.BadValue(f"{name}: {why}")
          ex[role] = base.convert(value, specs[role])
      except values.BadValue as e:
        skipped.skip(f"line {i + 1}", str(e))
        continue
      yield f"line{i + 1}", ex

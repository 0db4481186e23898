"""Where a TFDS builder finds its raw files: the manual directory, else the upstream URLs.

`onemodel.data.prepare` checks the manual directory first and only lets TFDS download
when the user passed `--download`; checksums of upstream files live in
problems/checksums.tsv, which TFDS verifies on download.
"""

import os
from typing import Dict


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

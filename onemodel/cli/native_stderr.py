"""TensorFlow's start-up notices on stderr, filtered: a command is quiet by default.

While TensorFlow loads and finds its devices, its C++ code writes straight to file
descriptor 2, before absl logging is set up and whatever TF_CPP_MIN_LOG_LEVEL says: a
oneDNN notice, "Could not find cuda drivers", and, on a machine without an NVIDIA
driver, an ERROR-level "failed call to cuInit". None of them means anything is wrong
there. `filtered()` captures descriptor 2 for that window and writes every other line
back unchanged, in order."""

import contextlib
import os
import re
import sys
import threading

_EXPECTED = (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
    r"STDERR$",
    r"\] oneDNN custom operations are on\.",
    r"\] Could not find cuda drivers on your machine, GPU will not be used\.")
# Expected only without an NVIDIA driver: with one, a failed cuInit is a real problem.
_CUINIT = r"\] failed call to cuInit: "


def nvidia_driver() -> bool:
  return os.path.exists("/proc/driver/nvidia/version")


def expected(line: str, has_driver: bool) -> bool:
  """True for a start-up notice that says nothing is wrong on this machine."""
  patterns = _EXPECTED + (() if has_driver else (_CUINIT,))
  return any(re.search(p, line.rstrip("\n")) for p in patterns)


@contextlib.contextmanager
def filtered():
  """Inside: descriptor 2 goes to a pipe. On exit (also on an exception): the real
  stderr is back and gets every captured line that is not an expected notice."""
  has_driver = nvidia_driver()
  sys.stderr.flush()
  saved = os.dup(2)
  read_fd, write_fd = os.pipe()
  os.dup2(write_fd, 2)
  os.close(write_fd)
  chunks = []
  reader = threading.Thread(target=_drain, args=(read_fd, chunks), daemon=True)
  reader.start()
  try:
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)  # the pipe's last write end closes: the reader sees its end
    os.close(saved)
    reader.join()
    os.close(read_fd)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    kept = "".join(l for l in text.splitlines(keepends=True) if not expected(l, has_driver))
    if kept:
      os.write(2, kept.encode("utf-8"))


def _drain(fd, chunks):
  while True:
    chunk = os.read(fd, 65536)
    if not chunk:
      return
    chunks.append(chunk)

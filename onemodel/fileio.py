"""Crash-safe writes through `tf.io.gfile`: nothing a user owns is ever left half-written.

Every run-directory and data file goes through `tf.io.gfile`, so the same code writes to
a local disk, to GCS (`gs://`) or to any filesystem TensorFlow registers (its own
in-memory `ram://` is what the tests use). A write goes to a temporary file beside its
target and is renamed over it; a crash leaves the old file, never half of a new one.
"""

import json
import os
import uuid

import tensorflow as tf

from onemodel.errors import UserError

TEMP_MARK = ".tmp-onemodel-"


def is_local(path: str) -> bool:
  return "://" not in path


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes to a temporary file in the same directory, then renames over `path`."""
  d = os.path.dirname(path) or "."
  tf.io.gfile.makedirs(d)
  tmp = os.path.join(d, f"{TEMP_MARK}{uuid.uuid4().hex[:8]}-{os.path.basename(path)}")
  try:
    if is_local(path):  # fsync: the rename must not land before the data
      with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    else:
      with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(data)
    tf.io.gfile.rename(tmp, path, overwrite=True)
  except BaseException:
    if tf.io.gfile.exists(tmp):
      tf.io.gfile.remove(tmp)
    raise


def atomic_write_text(path: str, text: str) -> None:
  atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str, obj) -> None:
  atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_text(path: str) -> str:
  with tf.io.gfile.GFile(path, "r") as f:
    return f.read()


def read_bytes(path: str) -> bytes:
  with tf.io.gfile.GFile(path, "rb") as f:
    return f.read()


def remove_temp_files(directory: str) -> list:
  """Deletes leftovers of interrupted atomic writes in `directory` -> their names."""
  if not tf.io.gfile.isdir(directory):
    return []
  gone = []
  for name in tf.io.gfile.listdir(directory):
    if name.startswith(TEMP_MARK):
      tf.io.gfile.remove(os.path.join(directory, name))
      gone.append(name)
  return gone


def check_directory_path(path: str, what: str) -> None:
  """A directory path a user gave (`what`: the flag) that cannot become a directory
  because some part of it is an existing file -> UserError naming both, before any work
  (else mkdir fails later with FileExistsError or NotADirectoryError). Local paths only:
  object stores have no such parts."""
  if not is_local(path):
    return
  p = os.path.abspath(path)
  while not os.path.exists(p):
    if os.path.dirname(p) == p:
      return
    p = os.path.dirname(p)
  if os.path.isdir(p):
    return
  if p == os.path.abspath(path):
    raise UserError(f"{what} {path} is a file, not a directory")
  raise UserError(f"{what} {path}: {p} is a file, not a directory")

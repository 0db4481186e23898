"""Log filters for TensorFlow notices that tell a user nothing they need, used where
onemodel itself causes them (see each caller for which and why)."""

import logging


class DropMessages(logging.Filter):
  """Drops log records whose message starts with one of `starts` (a string or a tuple)
  and contains `part`."""

  def __init__(self, starts, part: str = ""):
    super().__init__()
    self.starts, self.part = starts, part

  def filter(self, record):
    try:
      msg = record.getMessage()  # with its arguments (TensorFlow's deprecations use them)
    except (TypeError, ValueError):
      msg = str(record.msg)
    return not (msg.startswith(self.starts) and self.part in msg)


def tensorflow_logger() -> logging.Logger:
  return logging.getLogger("tensorflow")

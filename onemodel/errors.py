"""The one exception type a user mistake raises.

CLI entry points catch `UserError` and print its message as one line with a non-zero
exit; anything else is a bug in onemodel and keeps its traceback.
"""


class UserError(Exception):
  """A mistake in what the user asked for: bad name, missing file, bad config."""

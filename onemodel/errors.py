"""The one exception type a user mistake raises.

CLI entry points catch `UserError` and print its message as one line with a non-zero
exit; anything else is a bug in onemodel and keeps its traceback.
"""

import dataclasses
import numbers


class UserError(Exception):
  """A mistake in what the user asked for: bad name, missing file, bad config."""


# A command's exit status after a signal, once its checkpoint is saved: 128 + the
# signal's number, as shells report (onemodel-launch and Kubernetes' pod failure policy
# read 143 as "preempted, resume me").
SIGNAL_EXIT = {"SIGTERM": 143, "SIGINT": 130}


# A word of an error line longer than this (a pasted 100,000-character binding value) is
# shown by its start and its length, so the line stays one readable line.
MAX_WORD = 120


def one_line(message: str) -> str:
  """`message` as the one line a command prints: gin's "In call to configurable" context
  lines dropped (the message names the binding), other newlines folded, long words
  clipped."""
  lines = [l for l in message.split("\n")
           if not l.strip().startswith("In call to configurable")]
  words = " ".join(lines).split(" ")
  return " ".join(w if len(w) <= MAX_WORD else f"{w[:60]}...{w[-2:]} [{len(w)} characters]"
                  for w in words)


# What a config field holds, judged by its default's type, and how an error says it.
_KINDS = {bool: (bool, "True or False"), int: (numbers.Integral, "an integer"),
          float: (numbers.Real, "a number"), str: (str, "a string")}


def check_field_types(config, gin_name: str) -> None:
  """Each field of a config dataclass annotated (and defaulting to) a bool, int, float
  or str holds a value of that kind, else one UserError naming the binding (`gin binding
  BackboneConfig.num_heads='two': must be an integer`) instead of a TypeError deep in
  the model. The configs call it from `__post_init__`."""
  for field in dataclasses.fields(config):
    # (By annotation: a field annotated Any, such as Mixture.rates, takes any value.)
    if field.type not in _KINDS or type(field.default) is not field.type:
      continue
    kind, said = _KINDS[field.type]
    value = getattr(config, field.name)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
      raise UserError(f"gin binding {gin_name}.{field.name}={value!r}: must be {said}")

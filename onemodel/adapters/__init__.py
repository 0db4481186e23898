"""Modality adapters, one file each. Every module in this package is imported here, so
adding a modality means adding one file that calls `base.MODALITIES.register(...)`."""

import dataclasses
import importlib
import pkgutil
import re
from typing import Tuple

import gin

from onemodel import registry
from onemodel.adapters.base import MODALITIES, Modality  # noqa: F401
from onemodel.errors import UserError

for _m in pkgutil.iter_modules(__path__):
  if _m.name != "base":
    importlib.import_module(f"{__name__}.{_m.name}")

# The three whose settings the model carries (loaded by the loop above).
_image = importlib.import_module(f"{__name__}.image")
_speech = importlib.import_module(f"{__name__}.speech")
_text = importlib.import_module(f"{__name__}.text")

# gin binds `ImageConfig.patch_size = 8`, `SpeechConfig.num_mels = 40`, ... through
# separate configurables that build the plain dataclasses: the classes themselves are
# never wrapped, so library code constructing or replacing one cannot read gin.
_CONFIGS = {"image": _image.ImageConfig, "speech": _speech.SpeechConfig,
            "text": _text.TextConfig}
_GIN = {modality: gin.external_configurable(config, config.__name__)
        for modality, config in _CONFIGS.items()}
_GIN_NAMES = tuple(config.__name__ for config in _CONFIGS.values())


@dataclasses.dataclass(frozen=True)
class ModalityConfigs:
  """The adapters' model-wide settings, as values. Resolved from gin once, at the edges
  (`from_gin()`, next to `BackboneConfig()`: the command line, trainer construction, the
  testing kit), then carried by the model (`OneModel.modality_cfg`) and given to the
  input pipeline, so the features always match the layers that read them. Library code
  takes them as an argument and never reads gin. `ModalityConfigs()` is the defaults.

  `overrides`: one problem's own settings in a joint model, from gin bindings scoped by
  the problem's name (`sst2/TextConfig.ngram_widths = (3, 5, 7)` gives SST-2's input
  n-gram convolutions while Multi30k's text input keeps plain tokens), as T2T's
  per-problem hparams did. Read them through `for_problem(name)`."""
  image: _image.ImageConfig = dataclasses.field(default_factory=_image.ImageConfig)
  speech: _speech.SpeechConfig = dataclasses.field(default_factory=_speech.SpeechConfig)
  text: _text.TextConfig = dataclasses.field(default_factory=_text.TextConfig)
  overrides: Tuple[Tuple[str, "ModalityConfigs"], ...] = ()

  def for_problem(self, name: str) -> "ModalityConfigs":
    """The settings problem `name`'s adapter and input pipeline use."""
    return dict(self.overrides).get(name, dataclasses.replace(self, overrides=()))

  @classmethod
  def from_gin(cls) -> "ModalityConfigs":
    """The settings as gin binds them (`ImageConfig.patch_size = 8`, ...), with each
    problem's scoped bindings (`sst2/TextConfig.ngram_pool = True`) where they differ
    from the unscoped ones. A scope that names no registered problem is a UserError: gin
    itself would ignore the binding."""
    shared = cls._resolve()
    overrides = []
    for scope, binding in _scoped_bindings().items():
      if scope not in registry.PROBLEMS:
        raise UserError(f"gin binding {binding}: {scope!r} is not a registered problem "
                        f"(a scope on {', '.join(_GIN_NAMES)} names the problem whose "
                        f"adapter it sets; registered: {', '.join(registry.PROBLEMS.names())})")
      with gin.config_scope(scope):
        own = cls._resolve()
      if own != shared:
        overrides.append((scope, own))
    return dataclasses.replace(shared, overrides=tuple(sorted(overrides)))

  @classmethod
  def _resolve(cls) -> "ModalityConfigs":
    return cls(**{name: configurable() for name, configurable in _GIN.items()})


# A scoped binding's line in gin.config_str(): `sst2/TextConfig.ngram_widths = (3, 5)`.
_SCOPED_RE = re.compile(r"^(\S+)/(?:" + "|".join(_GIN_NAMES) + r")\.\w+\s*=")


def _scoped_bindings():
  """{scope: its first binding line} over the scoped adapter-settings bindings gin holds."""
  found = {}
  for line in gin.config_str().splitlines():
    if m := _SCOPED_RE.match(line):
      found.setdefault(m.group(1), line)
  return found


def get_modality(name: str) -> Modality:
  return MODALITIES.get(name)

"""Modality adapters, one file each. Every module in this package is imported here, so
adding a modality means adding one file that calls `base.MODALITIES.register(...)`."""

import dataclasses
import importlib
import pkgutil

import gin

from onemodel.adapters.base import MODALITIES, Modality  # noqa: F401

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
_GIN = {"image": gin.external_configurable(_image.ImageConfig, "ImageConfig"),
        "speech": gin.external_configurable(_speech.SpeechConfig, "SpeechConfig"),
        "text": gin.external_configurable(_text.TextConfig, "TextConfig")}


@dataclasses.dataclass(frozen=True)
class ModalityConfigs:
  """The adapters' model-wide settings, as values. Resolved from gin once, at the edges
  (`from_gin()`, next to `BackboneConfig()`: the command line, trainer construction, the
  testing kit), then carried by the model (`OneModel.modality_cfg`) and given to the
  input pipeline, so the features always match the layers that read them. Library code
  takes them as an argument and never reads gin. `ModalityConfigs()` is the defaults."""
  image: _image.ImageConfig = dataclasses.field(default_factory=_image.ImageConfig)
  speech: _speech.SpeechConfig = dataclasses.field(default_factory=_speech.SpeechConfig)
  text: _text.TextConfig = dataclasses.field(default_factory=_text.TextConfig)

  @classmethod
  def from_gin(cls) -> "ModalityConfigs":
    """The settings as gin binds them (`ImageConfig.patch_size = 8`, ...)."""
    return cls(**{name: configurable() for name, configurable in _GIN.items()})


def get_modality(name: str) -> Modality:
  return MODALITIES.get(name)

"""Modality adapters, one file each. Every module in this package is imported here, so
adding a modality means adding one file that calls `base.MODALITIES.register(...)`."""

import importlib
import pkgutil

from onemodel.adapters.base import MODALITIES, Modality  # noqa: F401

for _m in pkgutil.iter_modules(__path__):
  if _m.name != "base":
    importlib.import_module(f"{__name__}.{_m.name}")


def get_modality(name: str) -> Modality:
  return MODALITIES.get(name)

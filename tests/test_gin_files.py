"""Every gin file the project ships parses, with every binding naming a real parameter."""

import glob
import os

import gin
import pytest

from onemodel.cli import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = sorted(glob.glob(os.path.join(ROOT, "gin", "**", "*.gin"), recursive=True))


def test_there_are_gin_files():
  names = {os.path.relpath(f, os.path.join(ROOT, "gin")) for f in FILES}
  assert {"models/tiny.gin", "models/small.gin", "models/base.gin"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda f: os.path.relpath(f, ROOT))
def test_gin_file_parses(path):
  from onemodel import registry
  registry.load_plugins()
  common.parse_gin([path], [], finalize=False)
  from onemodel import backbone
  assert backbone.BackboneConfig().model_dim > 0


def test_small_sits_between_tiny_and_base():
  from onemodel import backbone
  dims = {}
  for size in ("tiny", "small", "base"):
    gin.clear_config()
    common.parse_gin([os.path.join(ROOT, "gin", "models", f"{size}.gin")], [],
                     finalize=False)
    dims[size] = backbone.BackboneConfig().model_dim
  assert dims["tiny"] < dims["small"] < dims["base"]

"""Image folders, one folder per class (the layout of ImageNet's train/ and of
`keras.utils.image_dataset_from_directory`) -> image -> class label.

    sources.ImageFolder({"train": "train", "test": "test"})

reads RAW_DIR/train/<class name>/*.png (PNG, JPEG, GIF, BMP). The class of an image is
its folder's name, which must be one of the target spec's `class_names` (its index is
the class id). Images must have the input spec's shape; an unreadable image, an image of
another size and a file in a folder that is not a class are skipped and counted.
For an image + caption list, use `Delimited` with an image-path column."""

import dataclasses
import os
from typing import Mapping

from onemodel.errors import UserError
import onemodel.sources.base as base
import onemodel.sources.values as values


@dataclasses.dataclass(frozen=True)
class ImageFolder(base.Source):
  """dirs: split -> folder (relative to the raw dir) holding one subfolder per class."""
  dirs: Mapping[str, str]

  def splits(self):
    return tuple(self.dirs)

  def raw_files(self):
    return tuple(self.dirs.values())

  def describe(self):
    return f"image folders {', '.join(self.dirs.values())} (one subfolder per class)"

  def examples(self, split, raw_dir, specs, skipped):
    if specs["inputs"].modality != "image" or specs["targets"].modality != "label":
      raise UserError("ImageFolder makes image -> label problems; use Delimited for "
                      "other pairs (e.g. an image + caption list)")
    root = os.path.join(raw_dir, self.dirs[split])
    classes = specs["targets"].class_names
    counts = dict.fromkeys(classes, 0)
    yield from self._class_images(split, root, specs, skipped, counts)
    empty = [c for c in classes if not counts[c]]
    if empty:  # the model can never learn (or be scored on) such a class
      print(f"onemodel: warning: {self.dirs[split]}: no images of class "
            f"{', '.join(repr(c) for c in empty)} (folder missing or empty)", flush=True)

  def _class_images(self, split, root, specs, skipped, counts):
    classes = specs["targets"].class_names
    for folder in sorted(os.listdir(root)):
      path = os.path.join(root, folder)
      if not os.path.isdir(path):
        skipped.skip(f"{self.dirs[split]}/{folder}", "a file outside the class folders")
        continue
      for fname in sorted(os.listdir(path)):
        where = f"{self.dirs[split]}/{folder}/{fname}"
        if folder not in classes:
          skipped.skip(where, f"folder {folder!r} is not a class name of the problem")
          continue
        try:
          img = values.image(os.path.join(path, fname), specs["inputs"].shape)
        except values.BadValue as e:
          skipped.skip(where, str(e))
          continue
        counts[folder] += 1
        yield where, {"inputs": img, "targets": classes.index(folder)}

"""Which weights train: `TrainConfig.trainable` freezes the shared backbone for small
fine-tunes of a trained model (adapters only, or adapters and the backbone's norms)."""

import keras
import numpy as np


def set_trainable(model, which: str) -> None:
  """`TrainConfig.trainable`: 'adapters' freezes the backbone (its variables leave
  `model.trainable_variables`, so the step takes no gradient for them and the optimizer
  holds no slots); 'adapters_and_norms' trains the backbone's layer norms too, as the
  norm-only fine-tunes of Frankle et al. 2021 (arXiv:2003.00152). Checkpoints keep
  every weight either way."""
  if which == "all":
    return
  model.backbone.trainable = False  # recursive in Keras 3: every sublayer and variable
  if which == "adapters_and_norms":
    for layer in model.backbone._flatten_layers():  # pylint: disable=protected-access
      if isinstance(layer, keras.layers.LayerNormalization):
        layer.trainable = True


def parameter_line(model, which: str) -> str:
  total = sum(int(np.prod(v.shape)) for v in model.weights)
  trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
  return (f"model: {total:,} parameters, {trainable:,} trainable"
          + ("" if which == "all" else f" (TrainConfig.trainable={which!r})"))

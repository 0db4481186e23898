"""Built-in mixtures: MultiModel-style joint training over the built-in problems.

`onemodel-train --gin_param="TrainConfig.problem='multimodel'"` trains one model on
image classification, speech recognition and translation at once."""

from onemodel import mixtures

mixtures.register(mixtures.Mixture(
    name="multimodel",
    problems=("mnist", "fsdd", "multi30k_en_de"),
    rates="uniform",
    description="image + speech + translation, each problem equally often"))

mixtures.register(mixtures.Mixture(
    name="multimodel_lm",
    problems=("mnist", "fsdd", "multi30k_en_de", "tinyshakespeare"),
    rates="uniform",
    description="multimodel plus character-level language modelling"))

mixtures.register(mixtures.Mixture(
    name="multimodel4",
    problems=("mnist", "fsdd", "multi30k_en_de", "sst2"),
    rates="uniform",
    description="image, speech, translation and sentiment classification in one model "
                "(the README's first command trains it tiny)"))

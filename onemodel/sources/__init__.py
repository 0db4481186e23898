"""Generic sources: common raw layouts become problems in a few lines, with no builder.

    from onemodel import problem, sources
    problem.register(sources.problem(
        "my_sentiment",
        sources.Delimited({"train": "train.tsv", "validation": "dev.tsv"},
                          columns={"inputs": "sentence", "targets": "label"}),
        inputs=problem.FeatureSpec("text", length=64, vocab=problem.VocabSpec()),
        targets=problem.FeatureSpec("label", length=2, class_names=("neg", "pos"))))

Each source is prepared into TFDS format from `--manual_dir/NAME` like the built-ins."""

from onemodel.sources.base import Source, SourceBuilder, problem  # noqa: F401
from onemodel.sources.delimited import Delimited  # noqa: F401

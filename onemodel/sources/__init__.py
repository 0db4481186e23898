"""Generic sources: common raw layouts become problems in a few lines, with no builder.

    from onemodel import problem, sources
    problem.register(sources.problem(
        "my_sentiment",
        sources.Delimited({"train": "train.tsv", "validation": "dev.tsv"},
                          columns={"inputs": "sentence", "targets": "label"}),
        inputs=problem.FeatureSpec("text", length=64, vocab=problem.VocabSpec()),
        targets=problem.FeatureSpec("label", length=2, class_names=("neg", "pos"))))

* `ImageFolder({"train": "train", "test": "test"})`: one subfolder per class.
* `ParallelText({"train": ("train.en", "train.de"), ...})`: aligned lines, plain or .gz.
* `Delimited(files, columns)`: TSV / CSV / JSON lines with named columns: text -> label,
  text -> text, and, with a path column, an image + caption list (image -> text) or an
  audio manifest (path + transcript: speech -> text).

Any input modality pairs with any target the decoder emits (label or text). Each source
is prepared into TFDS format from `--manual_dir/NAME` (or `raw_subdir`) like the
built-ins; `onemodel.testing.check_problem` checks the result end to end."""

from onemodel.sources.base import Source, SourceBuilder, problem  # noqa: F401
from onemodel.sources.delimited import Delimited  # noqa: F401
from onemodel.sources.images import ImageFolder  # noqa: F401
from onemodel.sources.parallel import ParallelText  # noqa: F401

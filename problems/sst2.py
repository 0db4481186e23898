"""sst2: Stanford Sentiment Treebank, binary (Socher et al. 2013; GLUE's SST-2).

Movie-review sentences (lower-cased, tokenized with spaces) -> negative / positive.
Raw files in MANUAL_DIR/sst2: train.tsv (67,349 rows, header `label<TAB>sentence`),
dev.tsv (872) and test.tsv (1,821, labelled: the original binary test split), both with
header `label<TAB>content`; label 0 is negative, 1 positive. eval uses dev, the final
number is test accuracy. Published test accuracy: Kim's CNN 88.1% (arXiv:1408.5882),
a BiLSTM about 85-87%, BERT-base 93.5%.

Defined with a generic source, as a user's own text-classification problem would be."""

from onemodel import problem as problem_lib
from onemodel import sources

problem_lib.register(sources.problem(
    "sst2",
    sources.Delimited(
        files={"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"},
        # train.tsv calls the text column `sentence`, dev/test call it `content`.
        columns={"inputs": ("sentence", "content"), "targets": "label"}),
    # 64 SentencePiece tokens cover all but a handful of SST-2 sentences (max 52 words).
    inputs=problem_lib.FeatureSpec("text", length=64,
                                   vocab=problem_lib.VocabSpec("sentencepiece", 8000)),
    targets=problem_lib.FeatureSpec("label", length=2,
                                    class_names=("negative", "positive")),
    metrics=("accuracy",),
    description="SST-2 sentiment: sentence -> negative/positive"))

"""Problems on datasets of the TFDS catalog, the ones MultiModel-style work reaches for.

Each loads from `--data_dir` only; prepare it where there is internet (`onemodel-prepare
--problem=NAME --download`, or `tfds build`) and copy it over. imagenet2012 needs its
tar files from image-net.org in `--manual_dir/imagenet2012` (TFDS cannot download it).
Where a dataset has no validation split, one is carved from train (the eval role never
reads test)."""

from onemodel import problem as problem_lib
from onemodel.sources import catalog

P = problem_lib.FeatureSpec
SP = problem_lib.VocabSpec

# Class names of the CIFAR-10 page (www.cs.toronto.edu/~kriz/cifar.html); TFDS only
# knows them once the dataset is prepared.
CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
           "ship", "truck")

problem_lib.register(catalog.catalog_problem(
    "cifar10", "cifar10:3.0.2", {"inputs": "image", "targets": "label"},
    inputs=P("image", shape=(32, 32, 3), patch_size=4),
    targets=P("label", length=2, class_names=CIFAR10),
    splits={"train": "train[:45000]", "eval": "train[45000:]", "test": "test"},
    description="CIFAR-10 (TFDS catalog): 32x32 colour image -> class"))

problem_lib.register(catalog.catalog_problem(
    "imagenet2012", "imagenet2012:5.1.0",
    {"inputs": lambda ex: catalog.center_crop(ex["image"], 224), "targets": "label"},
    inputs=P("image", shape=(224, 224, 3), patch_size=16),  # ViT-B/16's patches
    targets=P("label", length=2, class_names=catalog.label_names_file(
        catalog.tfds_resource("datasets/imagenet2012/labels.txt"))),
    # The labelled validation set is the usual test; 10,000 training images are held out.
    splits={"train": "train[10000:]", "eval": "train[:10000]", "test": "validation"},
    manual_files=("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
    description="ImageNet ILSVRC 2012 (TFDS catalog, manual download): image -> class"))

problem_lib.register(catalog.catalog_problem(
    "librispeech", "librispeech:2.1.1",
    {"inputs": lambda ex: ex["speech"], "targets": "text"},
    inputs=P("speech", length=16000 * 16, sample_rate=16000),  # 16 s (longer are cut)
    targets=P("text", length=128, vocab=SP("sentencepiece", 8000)),
    splits={"train": "train_clean100+train_clean360+train_other500", "eval": "dev_clean",
            "test": "test_clean"},
    metrics=("wer",),
    description="LibriSpeech 960 h (TFDS catalog): speech 16 kHz -> transcript"))

for pair, src, tgt in (("de-en", "en", "de"), ("fr-en", "en", "fr")):
  problem_lib.register(catalog.catalog_problem(
      f"wmt14_{src}_{tgt}", f"wmt14_translate/{pair}:1.0.0", {"inputs": src, "targets": tgt},
      # One shared vocabulary learned from the first million sentence pairs.
      inputs=P("text", length=128, vocab=SP("sentencepiece", 32000, max_texts=2_000_000)),
      targets=P("text", length=128, vocab=SP("sentencepiece", 32000, max_texts=2_000_000)),
      splits={"train": "train", "eval": "validation", "test": "test"},
      description=f"WMT'14 {src} -> {tgt} (TFDS catalog; test: newstest2014)"))

problem_lib.register(catalog.catalog_problem(
    "coco_captions", "coco_captions/2014:1.1.0",
    {"inputs": lambda ex: catalog.center_crop(ex["image"], 224),
     "targets": lambda ex: ex["captions"]["text"][0]},
    inputs=P("image", shape=(224, 224, 3), patch_size=16),
    targets=P("text", length=32, vocab=SP("sentencepiece", 8000)),
    # Karpathy's splits (arXiv:1412.2306), as TFDS names them.
    splits={"train": "train+restval", "eval": "val", "test": "test"},
    description="COCO captions 2014 (TFDS catalog): image -> first caption"))

problem_lib.register(catalog.catalog_problem(
    "lm1b", "lm1b:1.1.0", {"targets": "text"},
    # Subword language modelling as Flax's lm1b example (SentencePiece 30k, windows of
    # 128 tokens); one sentence per example, so most sentences are one whole window.
    targets=P("text", length=128, vocab=SP("sentencepiece", 30000, max_texts=1_000_000)),
    # lm1b has no validation split: 30,000 training sentences are held out for "eval";
    # test is the benchmark's held-out set (news.en.heldout-00000).
    splits={"train": "train[30000:]", "eval": "train[:30000]", "test": "test"},
    description="One Billion Word benchmark (TFDS catalog): sentence language modelling"))

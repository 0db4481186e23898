"""Problem -> prepared TFDS data -> vocabulary -> batched tf.data with static shapes.

TFDS is only ever called with `download=False` semantics here: raw files come from the
manual directory (tests and CI: ../shared/data) or, only when the user passes
`--download`, from the upstream URLs. A missing directory is one clear error naming it,
never TFDS's retry loop (about 205 s without a network, measured).
"""

import dataclasses
import functools
import logging
import os
from typing import Dict, Iterator, Optional

import tensorflow as tf

from onemodel import adapters
from onemodel import batching
from onemodel import rawdata
from onemodel import vocab as vocab_lib
from onemodel.errors import UserError

AUTOTUNE = tf.data.AUTOTUNE
MANUAL_DIR_ENV = "ONEMODEL_MANUAL_DIR"
DATA_DIR_ENV = "ONEMODEL_DATA_DIR"


def default_manual_dir() -> str:
  return os.environ.get(MANUAL_DIR_ENV, os.path.expanduser("~/onemodel_data/manual"))


def default_data_dir() -> str:
  return os.environ.get(DATA_DIR_ENV, os.path.expanduser("~/onemodel_data/prepared"))


def builder(problem, data_dir: str):
  return problem.builder(data_dir=data_dir)


def is_prepared(problem, data_dir: str) -> bool:
  b = builder(problem, data_dir)
  return tf.io.gfile.exists(os.path.join(b.data_dir, "dataset_info.json"))


@rawdata.preparation
def prepare(problem, data_dir: str, manual_dir: str, download: bool = False,
            num_shards: int = 0, t2t_file: str = "", vocab: bool = True) -> None:
  """Builds the problem's TFDS data (and vocabulary) into `data_dir` if not there yet.

  `num_shards` > 0: record files per split (0: TFDS's choice, files of 64 MB to 1 GiB,
  so one per split of each built-in problem). More files let each worker of a cluster
  open only its own (see `raw_split`'s share). `t2t_file`: see `get_vocab`. vocab=False:
  the data only; training builds the vocabularies it uses (`get_vocabs`: a mixture's
  shared one, not each problem's own)."""
  import tensorflow_datasets as tfds
  if not is_prepared(problem, data_dir):
    not_prepared = getattr(problem.builder, "not_prepared_error", None)
    if not_prepared is not None and not download:  # a TFDS catalog dataset: never fetch
      raise UserError(not_prepared(data_dir))
    raw_dir = rawdata.raw_dir(problem, manual_dir)  # ROOT/raw_subdir or PROBLEM=DIR
    expected = getattr(problem.builder, "RAW_FILES", ())
    missing = [f for f in expected if not os.path.exists(os.path.join(raw_dir, f))]
    can_download = getattr(problem.builder, "HAS_DOWNLOAD", False)
    if missing and not (download and can_download):
      raise UserError(f"problem {problem.name}: raw data not found in {raw_dir} (missing "
                      f"{', '.join(missing[:3])}); point --manual_dir at a copy"
                      + (" or pass --download" if can_download else
                         " (it has no download URL)" if download else ""))
    config = tfds.download.DownloadConfig(
        manual_dir=None if missing else raw_dir, num_shards=num_shards or None,
        download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
    b = builder(problem, data_dir)
    logging.info("preparing %s into %s", problem.name, b.data_dir)
    with rawdata.explained(problem.name, raw_dir):
      b.download_and_prepare(download_config=config)
  if vocab:
    get_vocab(problem, data_dir, t2t_file=t2t_file)


def _check_prepared(problem, data_dir):
  if not is_prepared(problem, data_dir):
    raise UserError(f"problem {problem.name} is not prepared in {data_dir}; run "
                    f"onemodel-prepare --problem={problem.name} --data_dir={data_dir}")


def raw_split(problem, role: str, data_dir: str, shuffle_files=False,
              shuffle_seed=None, share=None) -> tf.data.Dataset:
  """The problem's split for `role` ('train', 'eval', 'test') as raw TFDS examples.

  `share` = (n, k): only the k-th of n disjoint, even ranges of the split's records
  (`tfds.even_splits`, TFDS's way to give each host its part; files outside the range
  are not opened). `k` may be a tensor, as a parameter-server worker's index is: then
  every range's dataset is built and only the chosen one is read (tf.data opens files
  at the first element)."""
  import tensorflow_datasets as tfds
  _check_prepared(problem, data_dir)
  if role not in problem.splits:
    raise UserError(f"problem {problem.name} has no {role!r} split "
                    f"(it has {', '.join(problem.splits)})")
  read = functools.partial(builder(problem, data_dir).as_dataset,
                           shuffle_files=shuffle_files,
                           read_config=tfds.ReadConfig(shuffle_seed=shuffle_seed))
  n, k = share or (1, 0)
  if n == 1:
    return read(split=problem.splits[role])
  ranges = tfds.even_splits(problem.splits[role], n)
  if isinstance(k, int):
    return read(split=ranges[k])
  return tf.data.Dataset.choose_from_datasets(
      [read(split=r) for r in ranges],
      tf.data.Dataset.from_tensors(tf.cast(k, tf.int64)).repeat(),
      stop_on_empty_dataset=True)


def get_vocab(problem, data_dir: str, wait_s: float = 0.0,
              t2t_file: str = "") -> Optional[vocab_lib.Vocab]:
  """The problem's text vocabulary (learned from its training text on first use; with
  `wait_s`, waited for instead; `t2t_file`: an existing T2T subword vocabulary instead,
  the edges pass `vocab.text_vocab()`: see `vocab.get_or_build_vocab`)."""
  specs = problem.text_specs()
  if not specs:
    return None
  return vocab_lib.get_or_build_vocab(data_dir, problem.name, specs[-1][1].vocab,
                                      lambda: train_texts(problem, data_dir), t2t_file,
                                      wait_s)


def train_texts(problem, data_dir: str) -> Iterator[str]:
  """The text of the problem's training split, example by example and role by role
  (inputs, then targets), as its vocabulary learns from it. Read in batches of 1,024:
  an element at a time from TFDS costs about 0.2 ms each, 12 s for SST-2."""
  roles = [role for role, _ in problem.text_specs()]
  ds = raw_split(problem, "train", data_dir).map(
      lambda ex: tuple(problem.to_raw(ex)[role] for role in roles),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  for batch in ds.batch(1024).as_numpy_iterator():
    for row in zip(*batch):
      for text in row:
        yield text.decode("utf-8")


def get_vocabs(problems, data_dir: str, wait_s: float = 0.0, t2t_file: str = ""):
  """Vocabularies for problems trained together -> ({problem: vocab}, {problem: key}).

  Alone, a problem learns its own vocabulary. Together, the problems with text targets
  of the same vocabulary kind ('sentencepiece' subwords, 'char') share ONE vocabulary
  learned from all their training text, and the model one embedding/softmax for them
  (the key). A problem whose only text is its input (a text classifier) keeps its own
  vocabulary, as its input embedding is its own (model.OneModel): learned into the
  shared one, SST-2's 67,000 English sentences took pieces from Multi30k's German
  (its validation targets 8.9% more tokens in the 8,000-piece vocabulary)."""
  if len(problems) == 1:
    return {problems[0].name: get_vocab(problems[0], data_dir, wait_s, t2t_file)}, {}
  from onemodel import mixtures
  from onemodel import problem as problem_lib
  vocabs, keys, groups = {}, {}, {}
  for p in problems:
    specs = p.text_specs()
    if specs and p.targets.modality == "text":
      groups.setdefault(specs[-1][1].vocab.kind, []).append(p)
    elif specs:
      vocabs[p.name] = get_vocab(p, data_dir, wait_s, t2t_file)
    else:
      vocabs[p.name] = None
  for kind, members in groups.items():
    if len(members) == 1:
      vocabs[members[0].name] = get_vocab(members[0], data_dir, wait_s, t2t_file)
      continue
    size = max(s.vocab.size for p in members for _, s in p.text_specs())
    spec = problem_lib.VocabSpec(kind, size)

    def texts(members=members):
      for p in members:
        yield from train_texts(p, data_dir)

    vocab = vocab_lib.get_or_build_vocab(
        data_dir, mixtures.shared_vocab_name(members, kind), spec, texts, t2t_file, wait_s)
    for p in members:
      vocabs[p.name] = vocab
      if p.targets.modality == "text":
        keys[p.name] = f"shared_{kind}"
  return vocabs, keys


def with_train_split(problem, split: str, data_dir: str, binding: str):
  """`problem` training on `split` (a TFDS split spec such as 'train[:10%]', '' = its own),
  which must lie inside the problem's training split (never its validation or test
  records); one UserError naming `binding` otherwise, or for an empty subset."""
  if not split:
    return problem
  _check_prepared(problem, data_dir)
  splits = builder(problem, data_dir).info.splits
  try:
    part = splits[split]
  except (ValueError, KeyError, NotImplementedError) as e:
    raise UserError(f"gin binding {binding}={split!r}: not a split of problem "
                    f"{problem.name} ({str(e).splitlines()[0]})") from None
  whole = [(f.filename, f.skip, f.skip + f.take)
           for f in splits[problem.splits["train"]].file_instructions]
  if not all(any(name == f.filename and lo <= f.skip and f.skip + f.take <= hi
                 for name, lo, hi in whole) for f in part.file_instructions):
    raise UserError(f"gin binding {binding}={split!r}: not inside problem "
                    f"{problem.name}'s training split {problem.splits['train']!r}")
  if not part.num_examples:
    raise UserError(f"gin binding {binding}={split!r}: no examples of problem "
                    f"{problem.name} in it")
  return dataclasses.replace(problem, splits={**problem.splits, "train": split})


def train_size(problem, data_dir: str) -> int:
  """Training examples (TFDS metadata), for rates proportional to dataset size."""
  return int(builder(problem, data_dir).info.splits[problem.splits["train"]].num_examples)


def _lm_window(ids, n: int, seed):
  """Language-model training: one random window of `n` tokens of a text's ids (the whole
  text if it is shorter), a pure function of the example's `seed`."""
  start = tf.random.stateless_uniform([], seed, 0, tf.maximum(tf.size(ids) - n, 0) + 1,
                                      tf.int32)
  return ids[start:start + n]


def _lm_eval_windows(feats, n: int) -> tf.data.Dataset:
  """Language-model evaluation: a text's ids cut into consecutive windows of `n` tokens,
  the last one padded, so every token is scored exactly once and a text shorter than a
  window (an lm1b sentence) is one window; other features are repeated per window."""
  ids = feats["targets"]
  count = tf.maximum((tf.size(ids) + n - 1) // n, 1)
  windows = tf.reshape(tf.pad(ids, [[0, count * n - tf.size(ids)]]), [count, n])
  rest = {k: tf.repeat(tf.expand_dims(v, 0), count, axis=0) for k, v in feats.items()
          if k != "targets"}
  return tf.data.Dataset.from_tensor_slices({**rest, "targets": windows})


def example_features(problem, raw: Dict[str, tf.Tensor], vocab, training: bool,
                     seed=None, modality_cfg=None):
  """Raw {'inputs', 'targets'} -> fixed-shape model features (runs in tf.data).

  With `training`, inputs are augmented as a pure function of `seed` ([2] int64, one per
  example; a constant one if not given). `modality_cfg`: the model's
  `adapters.ModalityConfigs` (None: the defaults), the settings its input layers use."""
  if training and seed is None:
    seed = tf.constant([0, 0], tf.int64)
  modality_cfg = _own_settings(problem, modality_cfg)
  out = {}
  if problem.inputs is not None:
    x = raw["inputs"]
    if training and problem.augment is not None:
      x = problem.augment(x, tf.random.experimental.stateless_fold_in(seed, 1))
    mod = adapters.get_modality(problem.inputs.modality)
    for k, v in mod.features(x, problem.inputs, vocab, training=False,
                             modality_cfg=modality_cfg).items():
      out["inputs" + (f"_{k}" if k else "")] = v
  spec = problem.targets
  ids = adapters.get_modality(spec.modality).target_ids(raw["targets"], spec, vocab)
  if problem.lm:  # the whole text's ids: windows are cut by augment_features (train)
    out["targets"] = ids  # or by _lm_eval_windows (evaluation)
  else:
    from onemodel.adapters.base import with_eos
    out["targets"] = with_eos(ids, spec.length)
  return augment_features(problem, out, seed, modality_cfg) if training else out


def _own_settings(problem, modality_cfg):
  """The problem's own adapter settings in a joint model (gin bindings scoped by its
  name), the same ones `OneModel` builds its input layer with."""
  return modality_cfg.for_problem(problem.name) if modality_cfg is not None else None


def augment_features(problem, feats, seed, modality_cfg=None):
  """Training-time augmentation of `example_features(..., training=False)`'s output:
  the input modality's `augment` (SpecAugment, random shift, word dropout), after the
  cache, a pure function of the example's `seed`. LM: a random window of the text."""
  if problem.lm:
    from onemodel.adapters.base import pad_or_truncate
    n = problem.targets.length
    return {**feats, "targets": pad_or_truncate(_lm_window(feats["targets"], n, seed), n)}
  if problem.inputs is None:
    return feats
  modality_cfg = _own_settings(problem, modality_cfg)
  mod = adapters.get_modality(problem.inputs.modality)
  keys = {k: k[len("inputs_"):] if k.startswith("inputs_") else "" for k in feats
          if k == "inputs" or k.startswith("inputs_")}
  aug = mod.augment({sub: feats[k] for k, sub in keys.items()}, problem.inputs, seed,
                    modality_cfg)
  return {**feats, **{k: aug[sub] for k, sub in keys.items()}}


def dataset(problem, role: str, data_dir: str, batch_size: int, training: bool,
            vocab=None, seed: Optional[int] = None, keep_raw: bool = False,
            shuffle_buffer: int = 4096, batch_tokens: int = 0, deterministic: bool = False,
            bucket_boundaries=(8, 12, 16, 20, 24, 32, 48),
            pack: bool = False, cache: bool = False, shard=None,
            shard_batches: bool = False, modality_cfg=None) -> tf.data.Dataset:
  """Batched features. Training: repeated, shuffled, static shapes (drop_remainder).

  `modality_cfg`: the model's `adapters.ModalityConfigs` (None: the defaults); pass the
  model's own (`model.modality_cfg`) so that the features match its input layers.

  `shard` = (number of input pipelines, this one's index; the index may be a tensor):
  this pipeline reads only its share of the raw examples (`shard_batches`: see below).

  With `batch_tokens` (training only, text features): length-bucketed batches of about
  that many tokens instead of `batch_size` examples.
  With `pack` (training only, text-token features only): `batch_size` rows, each
  several examples packed to the problem's spec lengths, with `*_segment_ids` and
  `*_positions` features (see `batching.pack_examples`); the model keeps attention within
  examples."""
  if pack:
    if not training:
      raise ValueError("pack=True is for training only (evaluation decodes examples "
                       "one per row)")
    if batch_tokens:
      raise ValueError("pack=True and batch_tokens are exclusive: packed rows already "
                       "have a fixed number of tokens (use batch_size)")
    if keep_raw:
      raise ValueError("pack=True cannot keep raw targets (keep_raw=True)")
    lengths = batching.pack_lengths(problem)
  if cache and not training:
    raise ValueError("cache=True is for training only (evaluation reads each example "
                     "once)")
  if cache and problem.augment is not None:
    raise ValueError(f"problem {problem.name}: cache=True caches prepared features, but "
                     "its Problem.augment changes raw inputs every epoch; turn the cache "
                     "off for it")
  order = dict(num_parallel_calls=AUTOTUNE, deterministic=deterministic or not training)

  def featurize(raw, seed=None, training=training):
    feats = example_features(problem, raw, vocab, training, seed, modality_cfg)
    if keep_raw:
      feats["targets_raw"] = raw["targets"]
      if raw.get("inputs") is not None and raw["inputs"].dtype == tf.string:
        feats["inputs_raw"] = raw["inputs"]  # source text, to show beside outputs
    return feats

  # Distributed input (`shard`): over one epoch the pipelines together read every
  # example exactly once. By default each reads only its own 1/N of the records from the
  # files and shuffles them alone (`raw_split`'s share; seqio and T5X shard by host the
  # same way), so N workers read the data once, not N times. With `shard_batches` (and
  # `batch_size` batches) every pipeline reads the one shuffled raw stream and keeps its
  # blocks of `batch_size` examples: a step of N pipelines then trains on the very
  # examples, with the very augmentation, of one device's N-times-larger batch, at the
  # price of N full reads (for small clusters, and the tests of that equivalence).
  num_shards, shard_index = shard or (1, 0)
  sharded = not (isinstance(num_shards, int) and num_shards == 1)
  blocks = training and sharded and shard_batches and not (cache or pack or batch_tokens)
  ds = raw_split(problem, role, data_dir, shuffle_files=training and not blocks,
                 shuffle_seed=seed,
                 share=(num_shards, shard_index) if sharded and not blocks else None)
  if not training:
    ds = ds.map(problem.to_raw, **order).map(featurize, **order)
    if problem.lm:
      ds = ds.flat_map(lambda feats: _lm_eval_windows(feats, problem.targets.length))
  else:
    if cache:
      # Prepare once, then repeat/shuffle the cached features and augment per epoch
      # (language modelling: a text's ids are cached, a window cut per epoch).
      ds = ds.map(problem.to_raw, **order)
      ds = ds.map(functools.partial(featurize, training=False), **order).cache()
    # Shuffle, then repeat: epochs stay whole (every example once per epoch), where
    # repeat-then-shuffle would let one epoch's examples run into the next.
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    # One seed per example for its random augmentation, from a counter: the counter is
    # part of the iterator's checkpoint, so a resumed run draws the same augmentation
    # (stateful random ops would make the iterator impossible to checkpoint).
    base = tf.stack([tf.cast(seed or 0, tf.int64),
                     tf.cast(0 if blocks else shard_index, tf.int64)])
    seeds = tf.data.Dataset.counter().map(
        lambda i: tf.random.experimental.stateless_fold_in(base, i))
    ds = tf.data.Dataset.zip(ds, seeds)
    if blocks:
      ds = ds.enumerate().filter(
          lambda j, ex: tf.equal((j // batch_size) % tf.cast(num_shards, tf.int64),
                                 tf.cast(shard_index, tf.int64)))
      ds = ds.map(lambda j, ex: ex)
    if cache:
      ds = ds.map(lambda feats, s: augment_features(problem, feats, s, modality_cfg),
                  **order)
    else:
      ds = ds.map(lambda ex, s: (problem.to_raw(ex), s), **order)
      ds = ds.map(featurize, **order)
  if pack:
    ds = batching.pack_examples(ds, lengths)
    ds = ds.batch(batch_size, drop_remainder=True)
  elif training and batch_tokens and batching.token_keys(problem):
    ds = batching.bucket_by_length(ds, problem, bucket_boundaries, batch_tokens)
  else:
    ds = ds.batch(batch_size, drop_remainder=training)
  return ds.prefetch(AUTOTUNE)

"""Problem -> prepared TFDS data -> vocabulary -> batched tf.data with static shapes.

TFDS is only ever called with `download=False` semantics here: raw files come from the
manual directory (tests and CI: ../shared/data) or, only when the user passes
`--download`, from the upstream URLs. A missing directory is one clear error naming it,
never TFDS's retry loop (about 205 s without a network, measured).
"""

import functools
import logging
import os
from typing import Dict, Optional

import tensorflow as tf

from onemodel import adapters
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
def prepare(problem, data_dir: str, manual_dir: str, download: bool = False) -> None:
  """Builds the problem's TFDS data (and vocabulary) into `data_dir` if not there yet."""
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
        manual_dir=None if missing else raw_dir,
        download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
    b = builder(problem, data_dir)
    logging.info("preparing %s into %s", problem.name, b.data_dir)
    with rawdata.explained(problem.name, raw_dir):
      b.download_and_prepare(download_config=config)
  get_vocab(problem, data_dir)


def _check_prepared(problem, data_dir):
  if not is_prepared(problem, data_dir):
    raise UserError(f"problem {problem.name} is not prepared in {data_dir}; run "
                    f"onemodel-prepare --problem={problem.name} --data_dir={data_dir}")


def raw_split(problem, role: str, data_dir: str, shuffle_files=False,
              shuffle_seed=None) -> tf.data.Dataset:
  """The problem's split for `role` ('train', 'eval', 'test') as raw TFDS examples."""
  import tensorflow_datasets as tfds
  _check_prepared(problem, data_dir)
  if role not in problem.splits:
    raise UserError(f"problem {problem.name} has no {role!r} split "
                    f"(it has {', '.join(problem.splits)})")
  return builder(problem, data_dir).as_dataset(
      split=problem.splits[role], shuffle_files=shuffle_files,
      read_config=tfds.ReadConfig(shuffle_seed=shuffle_seed))


def get_vocab(problem, data_dir: str, wait_s: float = 0.0) -> Optional[vocab_lib.Vocab]:
  """The problem's text vocabulary (learned from its training text on first use; with
  `wait_s`, waited for instead: see `vocab.get_or_build_vocab`)."""
  specs = problem.text_specs()
  if not specs:
    return None
  spec = specs[-1][1].vocab

  def texts():
    for ex in raw_split(problem, "train", data_dir).as_numpy_iterator():
      raw = problem.to_raw(ex)
      for role, _ in specs:
        yield raw[role].decode("utf-8")

  return vocab_lib.get_or_build_vocab(data_dir, problem.name, spec, texts, wait_s=wait_s)


def get_vocabs(problems, data_dir: str, wait_s: float = 0.0):
  """Vocabularies for problems trained together -> ({problem: vocab}, {problem: key}).

  Alone, a problem learns its own vocabulary. Together, the text features of the same
  vocabulary kind ('sentencepiece' subwords, 'char') share ONE vocabulary learned from
  all their training text, and the model one embedding/softmax for them (the key)."""
  if len(problems) == 1:
    return {problems[0].name: get_vocab(problems[0], data_dir, wait_s)}, {}
  from onemodel import mixtures
  from onemodel import problem as problem_lib
  vocabs, keys, groups = {}, {}, {}
  for p in problems:
    specs = p.text_specs()
    if specs:
      groups.setdefault(specs[-1][1].vocab.kind, []).append(p)
    else:
      vocabs[p.name] = None
  for kind, members in groups.items():
    if len(members) == 1:
      vocabs[members[0].name] = get_vocab(members[0], data_dir, wait_s)
      continue
    size = max(s.vocab.size for p in members for _, s in p.text_specs())
    spec = problem_lib.VocabSpec(kind, size)

    def texts(members=members):
      for p in members:
        roles = [role for role, _ in p.text_specs()]
        for ex in raw_split(p, "train", data_dir).as_numpy_iterator():
          raw = p.to_raw(ex)
          for role in roles:
            yield raw[role].decode("utf-8")

    vocab = vocab_lib.get_or_build_vocab(
        data_dir, mixtures.shared_vocab_name(members, kind), spec, texts, wait_s=wait_s)
    for p in members:
      vocabs[p.name] = vocab
      if p.targets.modality == "text":
        keys[p.name] = f"shared_{kind}"
  return vocabs, keys


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
  mod = adapters.get_modality(problem.inputs.modality)
  keys = {k: k[len("inputs_"):] if k.startswith("inputs_") else "" for k in feats
          if k == "inputs" or k.startswith("inputs_")}
  aug = mod.augment({sub: feats[k] for k, sub in keys.items()}, problem.inputs, seed,
                    modality_cfg)
  return {**feats, **{k: aug[sub] for k, sub in keys.items()}}


def _token_keys(problem):
  return [role for role, spec in problem.features() if spec.modality in ("text",)]


def bucket_by_length(ds, problem, boundaries, batch_tokens: int):
  """Groups examples by token length into a handful of static shapes.

  Each bucket b pads to `boundaries[b]` tokens and holds `batch_tokens // boundaries[b]`
  examples (T2T's batch size in tokens), so short sentences are not padded to the
  longest one and XLA/TPU compile one program per bucket, not per length."""
  keys = _token_keys(problem)
  top = max(spec.length for role, spec in problem.features() if role in keys)
  boundaries = sorted(b for b in boundaries if b < top) + [top]
  sizes = [max(batch_tokens // b, 1) for b in boundaries]

  def length(ex):
    return tf.reduce_max([tf.reduce_sum(tf.cast(ex[k] != 0, tf.int32)) for k in keys])

  def key_fn(ex):
    return tf.cast(tf.reduce_sum(tf.cast(length(ex) > tf.constant(boundaries), tf.int32)),
                   tf.int64)

  def reduce_fn(key, window):
    size = tf.gather(tf.constant(boundaries), key)
    def cut(batch):
      return {k: (v[:, :size] if k in keys else v) for k, v in batch.items()}
    return window.batch(tf.gather(tf.constant(sizes, tf.int64), key),
                        drop_remainder=True).map(cut)

  return ds.group_by_window(key_fn, reduce_fn,
                            window_size_func=lambda k: tf.gather(
                                tf.constant(sizes, tf.int64), k))


def _real_length(x):
  """Tokens before the trailing padding of a 1-D id sequence (PAD = 0)."""
  idx = tf.range(1, tf.shape(x)[0] + 1)
  return tf.reduce_max(tf.concat([[0], tf.where(x != 0, idx, 0)], axis=0))


def pack_examples(ds: tf.data.Dataset, lengths: Dict[str, int]) -> tf.data.Dataset:
  """Greedily packs consecutive examples into rows of fixed length (as seqio's packing).

  ds: unbatched examples whose features `lengths` names (e.g. {'inputs': 32,
    'targets': 32}) are 1-D int32 ids, padded with 0 after their real tokens. Other
    features are not allowed (they could not be packed).
  Returns unbatched rows with, for each key k: `k` [L_k] the concatenated tokens,
  `k_segment_ids` [L_k] (1, 2, 3, .. per example, 0 on padding) and `k_positions`
  [L_k] (0, 1, 2, .. restarting at every example, 0 on padding). Example j of a row has
  segment id j+1 in every key, so inputs and targets stay paired.

  Next-fit greedy, in order: an example goes into the current row if every one of its
  features fits, else the row is emitted and a new one starts with it. Examples without
  any token are dropped. Shapes are static ([L_k]); a finite dataset's last row is
  flushed at its end. Implemented with `Dataset.scan` (no Python generator)."""
  keys = sorted(lengths)
  spec = ds.element_spec
  if sorted(spec) != keys:
    raise ValueError(f"pack_examples: features {sorted(spec)} are not exactly the "
                     f"packed keys {keys}")
  for k in keys:
    if spec[k].shape.as_list() != [lengths[k]] or not spec[k].dtype.is_integer:
      raise ValueError(f"pack_examples: feature {k!r} must be 1-D integer ids of length "
                       f"{lengths[k]}, not {spec[k].dtype.name} {spec[k].shape}")

  def empty():
    state = {"count": tf.constant(0, tf.int32)}
    for k in keys:
      state[k] = tf.zeros([lengths[k]], spec[k].dtype)
      state[k + "_segment_ids"] = tf.zeros([lengths[k]], tf.int32)
      state[k + "_positions"] = tf.zeros([lengths[k]], tf.int32)
      state[k + "_fill"] = tf.constant(0, tf.int32)
    return state

  def row(state):
    return {k: v for k, v in state.items() if k != "count" and not k.endswith("_fill")}

  def append(state, ex, n):
    """`state` with example `ex` (real lengths n[k]) written after its tokens."""
    out = {"count": state["count"] + 1}
    seg = state["count"] + 1
    for k in keys:
      fill, real = state[k + "_fill"], tf.range(lengths[k]) < n[k]
      # Rolling by `fill` only wraps padding around: n[k] <= lengths[k] - fill.
      out[k] = state[k] + tf.roll(ex[k], fill, 0)
      out[k + "_segment_ids"] = state[k + "_segment_ids"] + tf.roll(
          tf.where(real, seg, 0), fill, 0)
      out[k + "_positions"] = state[k + "_positions"] + tf.roll(
          tf.where(real, tf.range(lengths[k]), 0), fill, 0)
      out[k + "_fill"] = fill + n[k]
    return out

  def select(cond, a, b):
    return {k: tf.where(cond, a[k], b[k]) for k in a}

  def step(state, elem):
    ex, end = elem
    n = {k: _real_length(ex[k]) for k in keys}
    fits = tf.reduce_all([state[k + "_fill"] + n[k] <= lengths[k] for k in keys])
    no_tokens = tf.reduce_all([n[k] == 0 for k in keys])
    nonempty = state["count"] > 0
    emit = tf.where(end, nonempty, ~fits & ~no_tokens)
    start = select(fits, state, empty())        # a full row starts over
    new = select(no_tokens | end, select(end, empty(), state), append(start, ex, n))
    return new, (emit, row(state))

  def not_end(ex):
    return ex, tf.constant(False)

  def emitted(emit, unused_row):
    return emit

  def drop_flag(unused_emit, packed):
    return packed

  end_marker = ({k: tf.zeros([lengths[k]], spec[k].dtype) for k in keys}, tf.constant(True))
  ds = ds.map(not_end).concatenate(tf.data.Dataset.from_tensors(end_marker))
  return ds.scan(empty(), step).filter(emitted).map(drop_flag)


def pack_lengths(problem) -> Dict[str, int]:
  """The keys and row lengths `pack_examples` uses for `problem` (text tokens only), or a
  ValueError naming why the problem cannot be packed."""
  feats = problem.features()
  bad = [f"{role} ({spec.modality})" for role, spec in feats if spec.modality != "text"]
  if bad:
    raise ValueError(f"problem {problem.name}: packing needs text-token features only, "
                     f"not {', '.join(bad)}")
  return {role: spec.length for role, spec in feats}


def dataset(problem, role: str, data_dir: str, batch_size: int, training: bool,
            vocab=None, seed: Optional[int] = None, keep_raw: bool = False,
            shuffle_buffer: int = 4096, batch_tokens: int = 0, deterministic: bool = False,
            bucket_boundaries=(8, 12, 16, 20, 24, 32, 48),
            pack: bool = False, cache: bool = False, shard=None,
            modality_cfg=None) -> tf.data.Dataset:
  """Batched features. Training: repeated, shuffled, static shapes (drop_remainder).

  `modality_cfg`: the model's `adapters.ModalityConfigs` (None: the defaults); pass the
  model's own (`model.modality_cfg`) so that the features match its input layers.

  `shard` = (number of input pipelines, this one's index; either may be a tensor):
  this pipeline reads only its share of the raw examples.

  With `batch_tokens` (training only, text features): length-bucketed batches of about
  that many tokens instead of `batch_size` examples.
  With `pack` (training only, text-token features only): `batch_size` rows, each
  several examples packed to the problem's spec lengths, with `*_segment_ids` and
  `*_positions` features (see `pack_examples`); the model keeps attention within
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
    lengths = pack_lengths(problem)
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

  # Distributed input: every input pipeline featurizes only its own examples, and over
  # one epoch the pipelines together read every example exactly once (files are read in
  # a fixed order when sharded). With `batch_size` batches, all pipelines read the one
  # shuffled raw stream (reading is cheap; featurizing, e.g. a log-mel, is not) and each
  # keeps its blocks of `batch_size` examples: a step of N pipelines then trains on the
  # very examples, with the very augmentation, of one device's N-times-larger batch.
  # Otherwise (token buckets, packing, the feature cache) each takes its shard of the raw
  # examples first (tf.distribute's input guide).
  num_shards, shard_index = shard or (1, 0)
  sharded = not (isinstance(num_shards, int) and num_shards == 1)
  blocks = training and sharded and not (cache or pack or batch_tokens)
  ds = raw_split(problem, role, data_dir, shuffle_files=training and not sharded,
                 shuffle_seed=seed)
  if sharded and not blocks:
    ds = ds.shard(num_shards, shard_index)
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
    ds = pack_examples(ds, lengths)
    ds = ds.batch(batch_size, drop_remainder=True)
  elif training and batch_tokens and _token_keys(problem):
    ds = bucket_by_length(ds, problem, bucket_boundaries, batch_tokens)
  else:
    ds = ds.batch(batch_size, drop_remainder=training)
  return ds.prefetch(AUTOTUNE)

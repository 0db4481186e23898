"""Decoding: greedy, sampling and beam search over a key/value cache, all with static
shapes so the whole loop compiles under `tf.function(jit_compile=True)`.

T2T's decoding took seconds a sentence until caching arrived (T2T #70, #386): here each
step runs the decoder on one position and reads earlier keys/values from a cache of
[B, H, T, K] per layer; encoder keys/values are computed once per decode.

Beam search follows T2T/GNMT (Wu et al. 2016, arXiv:1609.08144, eq. 14): finished
hypotheses are scored log P / ((5 + length) / 6)^alpha (defaults beam 4, alpha 0.6, as
T2T), and the search stops once no alive beam can beat the worst finished one — or, when
only the best hypothesis is wanted (evaluation, decoding without `return_beams`), once no
alive beam can beat the best finished one: the same best output, fewer steps.
"""

import dataclasses
from typing import Callable

import gin
import tensorflow as tf

from onemodel import errors
from onemodel import vocab as vocab_lib

NEG_INF = -1e9


METHODS = ("greedy", "beam", "sample")


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
  """How `onemodel-decode`, `onemodel-export` and evaluation decode. A plain value:
  `DecodeConfig()` is the defaults below, whatever gin binds; `from_gin()` (called at the
  edges only: the command lines, trainer construction, the testing kit) reads the
  bindings (`DecodeConfig.method = 'beam'`), as t5x keeps gin out of its library."""
  method: str = "greedy"        # greedy | beam | sample
  beam_size: int = 4
  alpha: float = 0.6            # GNMT length penalty exponent
  temperature: float = 1.0      # sample only
  top_k: int = 0                # sample only; 0 = the whole vocabulary
  max_decode_length: int = 0    # 0: the problem's target length
  return_beams: bool = False    # beam only: all beams, best first
  seed: int = 0
  # Compile the decoding loop with XLA (static shapes throughout: the cache, the beams)
  # in onemodel-eval, onemodel-decode and the exported SavedModel.
  jit_compile: bool = False

  def __post_init__(self):
    errors.check_field_types(self, "DecodeConfig")
    if self.method not in METHODS:
      raise errors.UserError(f"gin binding DecodeConfig.method={self.method!r}: use "
                             + ", ".join(repr(m) for m in METHODS))
    if self.alpha < 0:  # the beam search's stop needs a penalty that grows with length
      raise errors.UserError(f"gin binding DecodeConfig.alpha={self.alpha}: must be >= 0")
    for name in ("beam_size", "max_decode_length", "top_k"):
      low = 1 if name == "beam_size" else 0
      if getattr(self, name) < low:
        raise errors.UserError(f"gin binding DecodeConfig.{name}={getattr(self, name)}: "
                               f"must be >= {low}")


# gin binds `DecodeConfig.method = 'beam'` etc. through a separate configurable that
# builds a plain `DecodeConfig`, so library code constructing one cannot read gin.
_GinDecodeConfig = gin.external_configurable(DecodeConfig, "DecodeConfig")


def from_gin(scope: str = "") -> DecodeConfig:
  """The decoding settings as gin binds them (for the edges, see `DecodeConfig`).

  `scope`: read `SCOPE/DecodeConfig.*` over the unscoped bindings; the trainer's final
  evaluation reads scope 'final', so a recipe can keep its periodic validation passes
  greedy (cheap) and decode the test split once with beam search (as T2T decodes its
  reported BLEU with beam 4, alpha 0.6)."""
  with gin.config_scope(scope or None):
    return _GinDecodeConfig()


def decode_function(model, problem: str, max_len: int, cfg: "DecodeConfig"):
  """tf.function(batch) -> (ids, scores), compiled with XLA if cfg.jit_compile."""
  def fn(batch):
    return decode(model, problem, batch, max_len, cfg)
  return tf.function(fn, jit_compile=cfg.jit_compile)


def length_penalty(length, alpha):
  return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def greedy(model, problem: str, batch, max_length: int, stop_early: bool = True):
  """Uncached reference decoder: recomputes the whole prefix at every step."""
  enc, enc_mask = model.encode(problem, batch, training=False)
  b = tf.shape(batch["targets"])[0]
  ids = tf.zeros([b, max_length], tf.int32)
  for i in tf.range(max_length):
    logits = model.decode(problem, ids, enc, enc_mask, training=False)   # [B, T, V]
    nxt = tf.argmax(logits[:, i], axis=-1, output_type=tf.int32)         # [B]
    ids += tf.one_hot(i, max_length, dtype=tf.int32)[tf.newaxis] * nxt[:, tf.newaxis]
    if stop_early and tf.reduce_all(tf.reduce_any(ids == vocab_lib.EOS_ID, axis=1)):
      break  # every row has ended
  return ids


def _start(model, problem, batch, batch_size, max_length):
  enc, enc_mask = model.encode(problem, batch, training=False)
  caches = model.backbone.init_cache(batch_size, max_length)
  return caches, model.backbone.cross_kv(enc), enc_mask


def _batch_size(batch):
  return tf.shape(batch["targets"] if "targets" in batch else batch["inputs"])[0]


def cached_greedy(model, problem: str, batch, max_length: int, temperature: float = 0.0,
                  top_k: int = 0, seed: int = 0, stop_early: bool = True):
  """Greedy (temperature 0) or sampled decoding with the cache -> (ids [B, T], logp [B])."""
  b = _batch_size(batch)
  caches, kvs, enc_mask = _start(model, problem, batch, b, max_length)
  ids = tf.zeros([b, max_length], tf.int32)
  prev = tf.zeros([b], tf.int32)
  done = tf.zeros([b], tf.bool)
  score = tf.zeros([b])
  for i in tf.range(max_length):
    logits, caches = model.decode_step(problem, prev, i, caches, kvs, enc_mask)
    logp = tf.nn.log_softmax(logits)
    if temperature > 0:
      scaled = logits / temperature
      if top_k:
        kth = tf.math.top_k(scaled, top_k).values[:, -1:]
        scaled = tf.where(scaled < kth, NEG_INF, scaled)
      nxt = tf.random.stateless_categorical(scaled, 1, seed=[seed, i],
                                            dtype=tf.int32)[:, 0]
    else:
      nxt = tf.argmax(logits, axis=-1, output_type=tf.int32)
    nxt = tf.where(done, vocab_lib.PAD_ID, nxt)
    score += tf.where(done, 0.0, tf.gather(logp, nxt, batch_dims=1))
    ids += tf.one_hot(i, max_length, dtype=tf.int32)[tf.newaxis] * nxt[:, tf.newaxis]
    done |= tf.equal(nxt, vocab_lib.EOS_ID)
    prev = nxt
    if stop_early and tf.reduce_all(done):
      break
  return ids, score


def beam_search(logits_fn: Callable, batch_size, beam_size: int, max_length: int,
                alpha: float, state, eos_id: int = vocab_lib.EOS_ID, best_only: bool = False):
  """Generic beam search.

  logits_fn(prev_ids [B*K], index, state) -> (logits [B*K, V], state); every tensor in
  `state` has leading dimension B*K (beams of one example are adjacent).
  Returns (sequences [B, K, T], scores [B, K]), best first; finished hypotheses are
  preferred, and rows with none fall back to their alive beams. With `best_only` the
  first sequence and score are exactly those of the full search and the others are the
  search's state when it stopped.
  """
  k = beam_size
  b = batch_size
  alive_seq = tf.zeros([b, k, max_length], tf.int32)
  # Only the first beam is alive at the start, so the first step does not pick k copies.
  alive_lp = tf.tile(tf.constant([[0.0] + [NEG_INF] * (k - 1)]), [b, 1])
  fin_seq = tf.zeros([b, k, max_length], tf.int32)
  fin_score = tf.fill([b, k], NEG_INF)
  prev = tf.zeros([b * k], tf.int32)
  max_penalty = length_penalty(max_length, alpha)
  for i in tf.range(max_length):
    logits, state = logits_fn(prev, i, state)
    v = tf.shape(logits)[-1]
    logp = tf.reshape(tf.nn.log_softmax(logits), [b, k, v])
    cand = tf.reshape(alive_lp[:, :, tf.newaxis] + logp, [b, k * v])     # [B, K*V]
    top_lp, top_idx = tf.math.top_k(cand, 2 * k)                         # [B, 2K]
    from_beam, tok = top_idx // v, top_idx % v
    seqs = tf.gather(alive_seq, from_beam, batch_dims=1)                 # [B, 2K, T]
    seqs += tf.one_hot(i, max_length, dtype=tf.int32) * tok[:, :, tf.newaxis]
    is_eos = tf.equal(tok, eos_id)
    # Alive: the best k candidates that did not just end.
    alive_lp, pick = tf.math.top_k(tf.where(is_eos, NEG_INF, top_lp), k)
    alive_seq = tf.gather(seqs, pick, batch_dims=1)
    parent = tf.gather(from_beam, pick, batch_dims=1)                    # [B, K]
    flat = tf.reshape(parent + tf.range(b)[:, tf.newaxis] * k, [-1])     # [B*K]
    state = tf.nest.map_structure(lambda s: tf.gather(s, flat), state)
    prev = tf.reshape(tf.gather(tok, pick, batch_dims=1), [-1])
    # Finished: merge the candidates that just ended into the k best so far.
    new_score = tf.where(is_eos, top_lp / length_penalty(i + 1, alpha), NEG_INF)
    all_seq = tf.concat([fin_seq, seqs], axis=1)
    fin_score, pick = tf.math.top_k(tf.concat([fin_score, new_score], axis=1), k)
    fin_seq = tf.gather(all_seq, pick, batch_dims=1)
    # Stop when the best alive beam, even at the kindest penalty, cannot beat the worst
    # finished one (in every row that has k finished), or with `best_only` the best
    # finished one: log-probabilities only fall as a beam grows, so nothing alive can
    # then displace it. On Multi30k's test split that stops a batch of 128 sentences
    # well before its slowest row has found its 4th ending (benchmarks/results/decoding.md).
    best_possible = alive_lp[:, 0] / max_penalty
    if tf.reduce_all(fin_score[:, 0 if best_only else -1] > best_possible):
      break
  has_fin = fin_score[:, :1] > NEG_INF / 2                               # [B, 1]
  alive_score = alive_lp / max_penalty
  seqs = tf.where(has_fin[:, :, tf.newaxis], fin_seq, alive_seq)
  scores = tf.where(has_fin, fin_score, alive_score)
  return seqs, scores


def cached_beam(model, problem: str, batch, max_length: int, beam_size: int = 4,
                alpha: float = 0.6, best_only: bool = False):
  """Beam search over the model -> (sequences [B, K, T], scores [B, K])."""
  b = _batch_size(batch)
  caches, kvs, enc_mask = _start(model, problem, batch, b, max_length)

  def tile(x):  # [B, ...] -> [B*K, ...], beams of one example adjacent
    return None if x is None else tf.repeat(x, beam_size, axis=0)

  # Only the self-attention caches are beam state (reordered every step); the encoder's
  # keys/values and mask are the same for every beam of an example, so they stay out of
  # it rather than being gathered at each step.
  kvs = [None if kv is None else (tile(kv[0]), tile(kv[1])) for kv in kvs]
  enc_mask = tile(enc_mask)

  def logits_fn(prev, i, caches):
    return model.decode_step(problem, prev, i, caches, kvs, enc_mask)

  return beam_search(logits_fn, b, beam_size, max_length, alpha,
                     tf.nest.map_structure(tile, caches), best_only=best_only)


def decode(model, problem: str, batch, max_length: int, cfg: DecodeConfig = None):
  """Dispatch by `DecodeConfig.method` -> (ids [B, T] or [B, K, T], scores)."""
  cfg = cfg or DecodeConfig()
  if cfg.method == "beam":
    seqs, scores = cached_beam(model, problem, batch, max_length, cfg.beam_size, cfg.alpha,
                               best_only=not cfg.return_beams)
    return (seqs, scores) if cfg.return_beams else (seqs[:, 0], scores[:, 0])
  if cfg.method == "sample":
    return cached_greedy(model, problem, batch, max_length, max(cfg.temperature, 1e-6),
                         cfg.top_k, cfg.seed)
  return cached_greedy(model, problem, batch, max_length)  # 'greedy' (__post_init__)


def strip_eos(ids):
  out = []
  for i in ids:
    if int(i) == vocab_lib.EOS_ID:
      break
    out.append(int(i))
  return out

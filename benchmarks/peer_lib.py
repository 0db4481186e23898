"""Shared pieces of the speed benchmarks against the keras-hub peer.

The peer is a plain Keras 3 seq2seq Transformer from keras-hub layers, as in the Keras
"English-to-Spanish translation with KerasHub" example: TokenAndPositionEmbedding (own
table for source and target, mask_zero=True) -> TransformerEncoder x L -> and
TransformerDecoder x L (self + cross attention) -> Dense(vocab, softmax), AdamW,
sparse categorical cross-entropy, trained with `model.fit`. keras-hub is a
benchmark-only dependency (`pip install -e .[bench]`).

Used by speed_vs_peer.py and useful_tokens.py (not a library: run those scripts)."""

import datetime
import os
import platform
import statistics
import sys
import time
import warnings

import keras
import tensorflow as tf

from onemodel import throughput
from runlib import cpu_model, git_rev

FLOP_FORMULA = (
    "model FLOPs per training step (same formula for both, onemodel.throughput.step_flops):\n"
    "  6 x [L_enc x (4 D^2 + 2 D F)] x B*S               encoder matmul weights x tokens\n"
    "+ 6 x [L_dec x (8 D^2 + 2 D F)] x B*T               decoder (self+cross attn, FFN)\n"
    "+ 6 x 2 x 2 D x (L_enc B S^2 + L_dec (B T^2 + B T S)) attention scores QK^T and AV\n"
    "+ 6 x D x V x B*T                                   output projection to the vocab\n"
    "(forward 2 FLOPs per multiply-add, backward 2x forward; embedding lookups, biases,\n"
    "layer norms, softmax and the optimizer are not counted)")


class TokenCount(keras.metrics.Metric):
  """Target tokens seen (labels != 0): the peer's useful (non-pad) target tokens; with
  padding=True all target positions, padding included."""

  def __init__(self, name="tokens", padding=False, **kwargs):
    super().__init__(name=name, **kwargs)
    self.padding = padding
    self.total = self.add_variable(shape=(), initializer="zeros", name="total")

  def update_state(self, y_true, y_pred, sample_weight=None):
    if self.padding:
      self.total.assign_add(tf.cast(tf.size(y_true), "float32"))
    else:
      self.total.assign_add(tf.reduce_sum(tf.cast(tf.not_equal(y_true, 0), "float32")))

  def result(self):
    return self.total

  def reset_state(self):
    self.total.assign(0.0)


def setup_base_model(ap, args, root):
  """Shared start of the peer benchmarks: checks the step flags, loads the problem
  plugins and parses gin/models/base.gin with the requested dropout."""
  from onemodel import registry
  from onemodel.cli import common
  if args.steps % args.steps_per_loop or args.warmup_steps % args.steps_per_loop:
    ap.error("--steps and --warmup_steps must be multiples of --steps_per_loop")
  registry.load_plugins()
  common.parse_gin([os.path.join(root, "gin", "models", "base.gin")],
                   [f"BackboneConfig.dropout_rate = {args.dropout!r}"], finalize=False)


def fit_rates(model, ds, steps, timer):
  """`steps` timed steps of `model.fit` on `ds` (one more, untimed, comes first) ->
  (steps/s, target tokens/s)."""
  model.fit(ds, epochs=1, steps_per_epoch=steps + 1, verbose=0, shuffle=False,
            callbacks=[timer])
  return timer.rates()


class StepTimer(keras.callbacks.Callback):
  """(time, cumulative target tokens, cumulative target positions) after every training
  batch of one `fit` call."""

  def __init__(self):
    super().__init__()
    self.marks = []

  def on_train_begin(self, logs=None):
    self.marks = []

  def on_train_batch_end(self, batch, logs=None):
    tokens = float(logs["tokens"])  # also waits for the step to finish
    self.marks.append((time.perf_counter(), tokens, float(logs.get("positions", 0.0))))

  def rates(self):
    """(steps/s, tokens/s) from the end of the first batch to the end of the last: the
    steady state, without `fit`'s per-call setup."""
    return self.all_rates()[:2]

  def all_rates(self):
    """(steps/s, tokens/s, target positions/s), as `rates`."""
    (t0, n0, p0), (t1, n1, p1) = self.marks[0], self.marks[-1]
    dt = max(t1 - t0, 1e-9)
    return (len(self.marks) - 1) / dt, (n1 - n0) / dt, (p1 - p0) / dt


def build_peer(vocab_size, max_len, model_dim=256, num_heads=4, ffn_dim=1024,
               num_layers=3, dropout=0.0, learning_rate=1e-3, jit=False, seed=0):
  """The keras-hub seq2seq peer, compiled for `fit` (AdamW, sparse CE, softmax output)."""
  import keras_hub
  # keras-hub's own layers warn that sublayers drop the mask; the Transformer layers
  # read the padding mask themselves (checked: padded source positions change nothing).
  warnings.filterwarnings("ignore", message=".*does not support masking.*")
  keras.utils.set_random_seed(seed)
  enc_in = keras.Input(shape=(None,), dtype="int32", name="encoder_inputs")
  x = keras_hub.layers.TokenAndPositionEmbedding(vocab_size, max_len, model_dim,
                                                 mask_zero=True)(enc_in)
  for _ in range(num_layers):
    x = keras_hub.layers.TransformerEncoder(ffn_dim, num_heads, dropout=dropout)(x)
  dec_in = keras.Input(shape=(None,), dtype="int32", name="decoder_inputs")
  y = keras_hub.layers.TokenAndPositionEmbedding(vocab_size, max_len, model_dim,
                                                 mask_zero=True)(dec_in)
  for _ in range(num_layers):
    y = keras_hub.layers.TransformerDecoder(ffn_dim, num_heads, dropout=dropout)(
        decoder_sequence=y, encoder_sequence=x)
  out = keras.layers.Dense(vocab_size, activation="softmax")(y)
  model = keras.Model([enc_in, dec_in], out, name="peer")
  model.compile(optimizer=keras.optimizers.AdamW(learning_rate),
                loss="sparse_categorical_crossentropy",
                metrics=[TokenCount(), TokenCount("positions", padding=True)],
                jit_compile=jit)
  return model


def peer_matmul_weights(model):
  """{'encoder': n, 'decoder': n, 'output': n}: the peer's matmul kernels (biases,
  norms and embedding tables excluded), to check the FLOP formula's weight counts."""
  import keras_hub
  out = {"encoder": 0, "decoder": 0, "output": 0}
  for layer in model.layers:
    kind = "encoder" if isinstance(layer, keras_hub.layers.TransformerEncoder) else \
        "decoder" if isinstance(layer, keras_hub.layers.TransformerDecoder) else \
        "output" if isinstance(layer, keras.layers.Dense) else None
    if kind:
      # Rank >= 2 and not a bias: keras' attention biases are [heads, head_dim].
      out[kind] += sum(int(w.numpy().size) for w in layer.trainable_weights
                       if len(w.shape) >= 2 and "bias" not in w.path)
  return out


def ours_matmul_weights(model):
  """The same count for onemodel: backbone matmul kernels per stack."""
  out = {"encoder": 0, "decoder": 0}
  for kind, layers in (("encoder", model.backbone.encoder_layers),
                       ("decoder", model.backbone.decoder_layers)):
    for layer in layers:
      out[kind] += sum(int(w.numpy().size) for w in layer.trainable_weights
                       if len(w.shape) >= 2)
  return out


def shape_stats(batch, enc_len, dec_len):
  """Python-float shape statistics of one [B, S] -> [B, T] batch for step_flops."""
  return {k: float(v) for k, v in throughput.batch_shapes(enc_len, dec_len, batch).items()}


def peak(sizes=(1024, 2048)):
  """The machine's fp32 matmul peak now: the best of measure_peak_gflops at each size
  (its loop feeds each matmul's result into the next, so nothing can be hoisted)."""
  rates = {n: throughput.measure_peak_gflops(n=n) for n in sizes}
  return max(rates.values()), rates


def med(xs):
  return statistics.median(xs) if xs else float("nan")


def machine_line():
  cpu = cpu_model()
  try:
    load = "load average %.2f %.2f %.2f" % os.getloadavg()
  except OSError:
    load = ""
  return (f"{platform.node()}: {platform.machine()} {cpu}, {os.cpu_count()} cores, {load}; "
          f"Python {platform.python_version()}, TF {tf.__version__}, Keras "
          f"{keras.__version__}")


def write_results(path, title, root, body_lines):
  """Writes a results page: title, date, machine, exact command, then the body."""
  try:
    import keras_hub
    hub = f", keras-hub {keras_hub.__version__}"
  except ImportError:
    hub = ""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  cmd = " ".join([os.path.relpath(sys.argv[0], root)] + sys.argv[1:])
  head = [f"# {title}", "",
          f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, commit "
          f"{git_rev(root)}",
          f"- machine: {machine_line()}{hub}",
          f"- command: `PYTHONPATH=. python {cmd}`", ""]
  with open(path, "w") as f:
    f.write("\n".join(head + body_lines) + "\n")
  print(f"wrote {path}", flush=True)

"""Plain-Keras peers for the time-to-target benchmark, one peer per process.

  python benchmarks/ttt_peers.py --peer=mnist_convnet --manual_dir=../shared/data \
      --seed=0 --out=/tmp/mnist.json [--t0=UNIX_TIME] [--budget_minutes=15]
  python benchmarks/ttt_peers.py --peer=babygpt --manual_dir=../shared/data \
      --seed=0 --out=/tmp/babygpt.json [--t0=UNIX_TIME] [--budget_minutes=8]
  python benchmarks/ttt_peers.py --peer=kim_cnn --manual_dir=../shared/data \
      --seed=0 --out=/tmp/kim_cnn.json [--t0=UNIX_TIME] [--budget_minutes=8]

mnist_convnet: the keras.io example "Simple MNIST convnet" (fchollet,
https://keras.io/examples/vision/mnist_convnet/) unchanged -- Conv2D(32) -> pool ->
Conv2D(64) -> pool -> Dropout(0.5) -> Dense(10, softmax), Adam, batch 128, 15 epochs --
except its data split, which is the framework's: validation = the first 5,000 training
images, training = the other 55,000, test = the official 10k, evaluated once at the end.
Target: validation accuracy >= 99.0 %.

babygpt: nanoGPT's small CPU character model (Karpathy,
https://github.com/karpathy/nanoGPT, README quick start, CPU run:
config/train_shakespeare_char.py --device=cpu --block_size=64 --batch_size=12
--n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000
--dropout=0.0, which reaches validation loss about 1.88) in plain Keras 3: learned
token + position embeddings, 4 pre-LayerNorm blocks without biases, output projection
tied to the token embedding, AdamW with nanoGPT's warmup + cosine schedule, 12 random
64-character windows per iteration. Validation loss per character (nats) over the
whole validation text every 250 iterations; training continues at min_lr past 2000
iterations until the budget ends. Target: <= 1.88. There is no test split: "test" is
the validation loss of the final model.

kim_cnn: Kim's CNN-rand for sentence classification (Yoon Kim, "Convolutional Neural
Networks for Sentence Classification", EMNLP 2014, arXiv:1408.5882; 82.7% SST-2 test
accuracy from randomly initialised word vectors, Table 2) in plain Keras, with the
hyper-parameters and initialisation of the paper and its code
(github.com/yoonkim/CNN_sentence, conv_net_sentence.py, process_data.py): its
clean_str_sst on the (lower-cased, tokenized) TSVs; every word of the three splits gets
a 300-dimensional vector uniform in [-0.25, 0.25] (words never seen in training keep
theirs), trained; convolutions of widths 3, 4 and 5 with 100 ReLU maps each (weights
uniform in [-0.01, 0.01]), max-over-time pooling, dropout 0.5, a zero-initialised softmax
layer whose class weight vectors are rescaled to norm <= 3 in Kim's units -- 1.5 here,
since Keras scales kept units by 1/(1-p) at training time where Kim's code scales the
weights by (1-p) at test time; Adadelta (rho 0.95, epsilon 1e-6), mini-batches of 50, 25
epochs. The data are the framework's sst2 splits: train.tsv (67,349 phrases) trains,
dev.tsv validates after every epoch, test.tsv is read once at the end -- with the
weights of the best validation epoch (the later one on a tie), the paper's early
stopping. One change for speed: mini-batches are grouped by length (16, 32 or 64
positions including Kim's 4 zero words on each side) instead of drawn at random, so
that short phrases do not pay for padding. Target: validation accuracy >= 82.0 %, the
framework's sst2 target.

Every wall time is seconds since --t0 (default: this script's start, taken before
tensorflow is imported), so it includes Python and TensorFlow start-up. A curve point's
wall_s is taken when its training ended, before its evaluation; its eval_s is the
validation time already inside wall_s (evaluations before this one) and eval_this_s the
time of its own evaluation. Training stops at the budget (checked after every step);
the partial last epoch is then evaluated too, so no point trains past the budget by
more than one step."""

import time

T_START = time.time()  # before the heavy imports: start-up counts towards wall time

import argparse
import collections
import csv
import json
import math
import os
import re
import shlex
import sys

import keras
import numpy as np
import tensorflow as tf
from keras import ops

import runlib  # benchmarks/runlib.py: stdlib only, no onemodel import

PEERS = ("mnist_convnet", "babygpt", "kim_cnn")
DEFAULT_BUDGET_MINUTES = {"mnist_convnet": 15.0, "babygpt": 8.0, "kim_cnn": 8.0}


class TimedEvals(keras.callbacks.Callback):
  """Evaluates at the end of every `fit` epoch and stops training at the deadline.

  `evaluate()` -> the metric value; `batch_examples(batch)` -> examples in that batch of
  the epoch (mnist's last batch is short)."""

  def __init__(self, label, t0, deadline, evaluate, batch_examples):
    super().__init__()
    self.label, self.t0, self.deadline = label, t0, deadline
    self.evaluate, self.batch_examples = evaluate, batch_examples
    self.steps = self.examples = 0
    self.eval_s = 0.0
    self.points = []

  def on_train_batch_end(self, batch, logs=None):
    self.steps += 1
    self.examples += self.batch_examples(batch)
    if time.time() >= self.deadline:
      self.model.stop_training = True  # fit breaks out of the epoch, then on_epoch_end

  def on_epoch_end(self, epoch, logs=None):
    if self.points and self.points[-1]["step"] == self.steps:
      return  # nothing trained since the last evaluation
    wall = time.time() - self.t0  # logs arrive as Python numbers: the steps are done
    start = time.time()
    value = float(self.evaluate())
    took = time.time() - start
    self.points.append({"step": self.steps, "examples": self.examples,
                        "wall_s": round(wall, 3), "eval_s": round(self.eval_s, 3),
                        "eval_this_s": round(took, 3), "value": value})
    self.eval_s += took
    print(f"{self.label} epoch {epoch + 1} step {self.steps} examples {self.examples} "
          f"wall {wall:.1f}s eval {took:.1f}s (all evals {self.eval_s:.1f}s) "
          f"value {value:.4f}", flush=True)
    if time.time() >= self.deadline:
      self.model.stop_training = True  # the evaluation used up the budget


# --- mnist_convnet -------------------------------------------------------------------

MNIST_VALIDATION = 5000  # the first training images, as the framework's mnist problem


def mnist_convnet(args, t0, deadline):
  with np.load(os.path.join(args.manual_dir, "mnist", "mnist.npz")) as d:
    x_all, y_all, x_test, y_test = d["x_train"], d["y_train"], d["x_test"], d["y_test"]

  def prep(x, y):  # uint8 [N, 28, 28] -> float [N, 28, 28, 1] in [0, 1]; one-hot labels
    return (x.astype("float32") / 255.0)[..., None], keras.utils.to_categorical(y, 10)

  x_val, y_val = prep(x_all[:MNIST_VALIDATION], y_all[:MNIST_VALIDATION])
  x_train, y_train = prep(x_all[MNIST_VALIDATION:], y_all[MNIST_VALIDATION:])
  x_test, y_test = prep(x_test, y_test)

  model = keras.Sequential([
      keras.Input(shape=(28, 28, 1)),
      keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),  # [B, 26, 26, 32]
      keras.layers.MaxPooling2D(pool_size=(2, 2)),                      # [B, 13, 13, 32]
      keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),  # [B, 11, 11, 64]
      keras.layers.MaxPooling2D(pool_size=(2, 2)),                      # [B, 5, 5, 64]
      keras.layers.Flatten(),                                           # [B, 1600]
      keras.layers.Dropout(0.5),
      keras.layers.Dense(10, activation="softmax"),                     # [B, 10]
  ])
  model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])

  batch_size, n = 128, len(x_train)

  def accuracy_percent(x, y):
    # The batch size only changes the speed of evaluation, not its result.
    got = model.evaluate(x, y, batch_size=1000, verbose=0, return_dict=True)
    return round(100.0 * got["accuracy"], 4)  # percent; float32 noise rounded off

  evals = TimedEvals(
      "mnist_convnet", t0, deadline, lambda: accuracy_percent(x_val, y_val),
      lambda batch: min(batch_size, n - batch * batch_size))
  model.fit(x_train, y_train, batch_size=batch_size, epochs=15, verbose=0,
            callbacks=[evals])
  test = accuracy_percent(x_test, y_test)
  print(f"mnist_convnet test accuracy {test:.2f}", flush=True)
  return {"metric": "accuracy", "target": 99.0, "higher_is_better": True,
          "curve": evals.points, "test": test, "params": trainable_params(model),
          "examples_unit": "images"}


# --- babygpt -------------------------------------------------------------------------

BLOCK, BATCH, N_LAYER, N_HEAD, N_EMBD = 64, 12, 4, 4, 128
LEARNING_RATE, MIN_LR, WARMUP_ITERS, LR_DECAY_ITERS = 1e-3, 1e-4, 100, 2000
EVAL_INTERVAL, EVAL_BATCH = 250, 256


# nanoGPT's _init_weights: N(0, 0.02) for linears and embeddings, the residual
# projections (attention c_proj, MLP c_proj) scaled down by sqrt(2 * n_layer). A new
# initializer per layer: a Keras initializer instance draws the same values every call.
def init():
  return keras.initializers.RandomNormal(stddev=0.02)


def residual_init():
  return keras.initializers.RandomNormal(stddev=0.02 / math.sqrt(2 * N_LAYER))


class CausalSelfAttention(keras.layers.Layer):
  """nanoGPT's CausalSelfAttention with bias=False: one fused q/k/v projection, causal
  scaled dot-product attention over n_head heads, output projection."""

  def __init__(self, n_embd, n_head, **kwargs):
    super().__init__(**kwargs)
    self.n_head = n_head
    self.qkv = keras.layers.Dense(3 * n_embd, use_bias=False, kernel_initializer=init())
    self.proj = keras.layers.Dense(n_embd, use_bias=False,
                                   kernel_initializer=residual_init())

  def call(self, x):                                          # x: [B, T, C]
    b, t = ops.shape(x)[0], ops.shape(x)[1]
    q, k, v = ops.split(self.qkv(x), 3, axis=-1)              # 3 x [B, T, C]
    heads = lambda z: ops.reshape(z, (b, t, self.n_head, -1))  # [B, T, H, C/H]
    y = ops.dot_product_attention(heads(q), heads(k), heads(v),
                                  is_causal=True)             # [B, T, H, C/H]
    return self.proj(ops.reshape(y, (b, t, -1)))              # [B, T, C]


class Block(keras.layers.Layer):
  """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

  def __init__(self, n_embd, n_head, **kwargs):
    super().__init__(**kwargs)
    # bias=False in nanoGPT: LayerNorm with a scale and no offset; torch's epsilon.
    self.ln_1 = keras.layers.LayerNormalization(epsilon=1e-5, center=False)
    self.attn = CausalSelfAttention(n_embd, n_head)
    self.ln_2 = keras.layers.LayerNormalization(epsilon=1e-5, center=False)
    # nn.GELU() is the exact (erf) GELU, Keras' default.
    self.fc = keras.layers.Dense(4 * n_embd, activation="gelu", use_bias=False,
                                 kernel_initializer=init())
    self.fc_proj = keras.layers.Dense(n_embd, use_bias=False,
                                      kernel_initializer=residual_init())

  def call(self, x):                                    # x: [B, T, C]
    x = x + self.attn(self.ln_1(x))
    return x + self.fc_proj(self.fc(self.ln_2(x)))      # MLP: C -> 4C -> C


class BabyGPT(keras.Model):
  """Token ids [B, T] -> next-character logits [B, T, vocab]."""

  def __init__(self, vocab_size, **kwargs):
    super().__init__(**kwargs)
    self.wte = keras.layers.Embedding(vocab_size, N_EMBD, embeddings_initializer=init())
    self.wpe = keras.layers.Embedding(BLOCK, N_EMBD, embeddings_initializer=init())
    self.blocks = [Block(N_EMBD, N_HEAD) for _ in range(N_LAYER)]
    self.ln_f = keras.layers.LayerNormalization(epsilon=1e-5, center=False)

  def call(self, idx):                                        # idx: [B, T] int32
    x = self.wte(idx) + self.wpe(ops.arange(ops.shape(idx)[1]))  # [B, T, C] + [T, C]
    for block in self.blocks:
      x = block(x)                                            # [B, T, C]
    x = self.ln_f(x)
    # Weight tying as nanoGPT (lm_head.weight = wte.weight): logits = x @ wte^T.
    return ops.matmul(x, ops.transpose(self.wte.embeddings))  # [B, T, V]


class NanoGPTSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """nanoGPT's get_lr(it): linear warmup to `peak`, cosine decay to `floor` at
  `decay_iters`, then constant `floor`. `step` is the 0-based iteration."""

  def __init__(self, peak, floor, warmup_iters, decay_iters):
    self.peak, self.floor = peak, floor
    self.warmup_iters, self.decay_iters = warmup_iters, decay_iters

  def __call__(self, step):
    it = ops.cast(step, "float32")
    warmup = self.peak * (it + 1.0) / (self.warmup_iters + 1.0)
    ratio = ops.clip((it - self.warmup_iters) / (self.decay_iters - self.warmup_iters),
                     0.0, 1.0)
    coeff = 0.5 * (1.0 + ops.cos(math.pi * ratio))  # 1 -> 0
    cosine = self.floor + coeff * (self.peak - self.floor)
    return ops.where(it < self.warmup_iters, warmup, cosine)  # past decay_iters: floor

  def get_config(self):
    return {"peak": self.peak, "floor": self.floor, "warmup_iters": self.warmup_iters,
            "decay_iters": self.decay_iters}


def char_data(manual_dir):
  """input.txt -> (vocabulary, train ids, validation ids): the first 90% of the
  characters train, the rest validate, as nanoGPT's shakespeare_char/prepare.py."""
  path = os.path.join(manual_dir, "tinyshakespeare", "input.txt")
  with open(path, encoding="utf-8") as f:
    text = f.read()
  chars = sorted(set(text))
  lookup = {c: i for i, c in enumerate(chars)}
  ids = np.array([lookup[c] for c in text], dtype=np.int32)
  cut = int(len(text) * 0.9)
  return chars, ids[:cut], ids[cut:]


def train_batches(ids, seed):
  """Endless batches of BATCH random windows, as nanoGPT's get_batch: x = ids[i:i+64],
  y = ids[i+1:i+65], i uniform in [0, len - 64). Seeded, and all in tf.data: no Python
  generator to feed, or to tear down at exit."""
  text = tf.constant(ids)
  offsets = tf.range(BLOCK + 1, dtype=tf.int64)

  def windows(r):  # r: [BATCH] random int64 -> x, y: [BATCH, 64] each
    w = tf.gather(text, r[:, None] % (len(ids) - BLOCK) + offsets)  # [BATCH, 65]
    return w[:, :-1], w[:, 1:]

  return tf.data.Dataset.random(seed=seed).batch(BATCH).map(windows).prefetch(2)


def validation_windows(ids):
  """The whole validation text as non-overlapping 64-character windows -> (x, y,
  weight), each [N, 64]: every character after the first is a target exactly once.
  The text does not divide into 64s, so one more window ends at the last character
  and weighs only the targets the full windows missed."""
  n = (len(ids) - 1) // BLOCK
  x = ids[:n * BLOCK].reshape(n, BLOCK)
  y = ids[1:n * BLOCK + 1].reshape(n, BLOCK)
  w = np.ones((n, BLOCK), np.float32)
  tail = len(ids) - 1 - n * BLOCK
  if tail:
    x = np.concatenate([x, ids[-BLOCK - 1:-1][None]])
    y = np.concatenate([y, ids[-BLOCK:][None]])
    w = np.concatenate([w, (np.arange(BLOCK) >= BLOCK - tail)[None].astype(np.float32)])
  return x, y, w


def babygpt(args, t0, deadline):
  chars, train_ids, val_ids = char_data(args.manual_dir)
  model = BabyGPT(len(chars))
  model(np.zeros((1, BLOCK), np.int32))  # build, to count and decay-filter the weights

  optimizer = keras.optimizers.AdamW(
      learning_rate=NanoGPTSchedule(LEARNING_RATE, MIN_LR, WARMUP_ITERS, LR_DECAY_ITERS),
      beta_1=0.9, beta_2=0.99, epsilon=1e-8,  # torch's AdamW epsilon
      weight_decay=0.1, global_clipnorm=1.0)
  # nanoGPT decays only the 2-D weights (matmuls, embeddings), not the LayerNorm scales.
  optimizer.exclude_from_weight_decay(var_names=["gamma"])
  model.compile(optimizer=optimizer,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

  vx, vy, vw = validation_windows(val_ids)
  n_targets = float(vw.sum())
  val = tf.data.Dataset.from_tensor_slices((vx, vy, vw)).batch(EVAL_BATCH).cache()

  @tf.function
  def summed_loss(x, y, w):  # summed nats over the batch's weighted targets
    logits = model(x, training=False)
    ce = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    return tf.reduce_sum(tf.cast(ce, tf.float64) * tf.cast(w, tf.float64))

  def val_loss():
    return round(sum(float(summed_loss(x, y, w)) for x, y, w in val) / n_targets, 5)

  evals = TimedEvals("babygpt", t0, deadline, val_loss, lambda batch: BATCH)
  # One fit "epoch" = one eval interval; the budget, not the epoch count, ends training.
  model.fit(train_batches(train_ids, args.seed), epochs=10**6,
            steps_per_epoch=EVAL_INTERVAL, shuffle=False, verbose=0,
            callbacks=[evals])
  test = evals.points[-1]["value"] if evals.points else val_loss()
  return {"metric": "loss_per_token", "target": 1.88, "higher_is_better": False,
          "curve": evals.points, "test": test, "params": trainable_params(model),
          "examples_unit": f"{BLOCK}-character windows", "vocab_size": len(chars),
          "validation_targets": int(n_targets)}


# --- kim_cnn -------------------------------------------------------------------------

KIM_WIDTHS, KIM_MAPS, KIM_DIM, KIM_BATCH, KIM_EPOCHS = (3, 4, 5), 100, 300, 50, 25
KIM_PAD = max(KIM_WIDTHS) - 1  # zero words on each side: every word is in every n-gram
KIM_BUCKETS = (16, 32, 64)     # padded lengths; the longest sentence (test) has 56 words


def clean_str_sst(text):
  """Kim's process_data.clean_str_sst: characters outside [A-Za-z0-9(),!?'`] become
  spaces; lower case; split into words."""
  return re.sub(r"[^A-Za-z0-9(),!?\'\`]", " ", text).strip().lower().split()


def sst2_split(manual_dir, name):
  """MANUAL_DIR/sst2/NAME.tsv -> (list of word lists, int labels). Header row first;
  its text column is `sentence` (train) or `content` (dev, test)."""
  path = os.path.join(manual_dir, "sst2", f"{name}.tsv")
  with open(path, encoding="utf-8", newline="") as f:
    rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
  return [clean_str_sst(text) for _, text in rows], np.array([int(y) for y, _ in rows])


def kim_encode(sentences, vocab, length=None):
  """Word lists -> ids with KIM_PAD zeros (id 0) before and at least KIM_PAD after.
  length=None: a ragged list, one array each."""
  ids = [np.array([0] * KIM_PAD + [vocab[w] for w in s] + [0] * KIM_PAD, np.int32)
         for s in sentences]
  if length is None:
    return ids
  out = np.zeros((len(ids), length), np.int32)
  for i, x in enumerate(ids):
    out[i, :len(x)] = x
  return out


class KimCNN(keras.Model):
  """Word ids [B, L] (0 = padding) -> class probabilities [B, 2]."""

  def __init__(self, vocab_size, **kwargs):
    super().__init__(**kwargs)
    self.embed = keras.layers.Embedding(
        vocab_size, KIM_DIM,
        embeddings_initializer=keras.initializers.RandomUniform(-0.25, 0.25))
    self.convs = [keras.layers.Conv1D(
        KIM_MAPS, w, activation="relu",
        kernel_initializer=keras.initializers.RandomUniform(-0.01, 0.01))
                  for w in KIM_WIDTHS]
    self.dropout = keras.layers.Dropout(0.5)
    # Kim's constraint: each class's weight vector rescaled to L2 norm 3 when larger, on
    # weights that his code multiplies by (1 - 0.5) at test time; Keras' inverted dropout
    # trains the already-scaled weights, so the same constraint is 1.5 here.
    self.out = keras.layers.Dense(2, activation="softmax", kernel_initializer="zeros",
                                  kernel_constraint=keras.constraints.MaxNorm(1.5, axis=0))

  def call(self, ids, training=False):                           # ids: [B, L]
    # Padding words are zero vectors, as in Kim's code (its row 0 is kept at zero).
    keep = ops.expand_dims(ops.cast(ops.not_equal(ids, 0), "float32"), -1)
    x = self.embed(ids) * keep                                   # [B, L, 300]
    pooled = [ops.max(conv(x), axis=1) for conv in self.convs]   # 3 x [B, 100]
    h = self.dropout(ops.concatenate(pooled, axis=-1), training=training)  # [B, 300]
    return self.out(h)                                           # [B, 2]


def kim_cnn(args, t0, deadline):
  train_x, train_y = sst2_split(args.manual_dir, "train")
  dev_x, dev_y = sst2_split(args.manual_dir, "dev")
  test_x, test_y = sst2_split(args.manual_dir, "test")
  # Kim's vocabulary is every word of the data set; a word that no training sentence
  # has keeps its random vector.
  counts = collections.Counter(w for s in train_x + dev_x + test_x for w in s)
  vocab = {w: i + 1 for i, (w, _) in enumerate(counts.most_common())}  # 0: padding

  lengths = np.array([len(s) + 2 * KIM_PAD for s in train_x], np.int32)
  padded = kim_encode(train_x, vocab, KIM_BUCKETS[-1])  # [N, 64]
  train = (tf.data.Dataset.from_tensor_slices((padded, lengths, train_y))
           .shuffle(len(train_y), seed=args.seed, reshuffle_each_iteration=True)
           .map(lambda x, n, y: (x[:n], y))  # each sentence at its own length
           .bucket_by_sequence_length(
               lambda x, y: tf.shape(x)[0],
               bucket_boundaries=[n + 1 for n in KIM_BUCKETS],  # length < boundary
               bucket_batch_sizes=[KIM_BATCH] * (len(KIM_BUCKETS) + 1),
               pad_to_bucket_boundary=True, drop_remainder=True)
           .prefetch(2))

  def fixed(sentences):  # an evaluation split at one length: one trace, one batch shape
    return kim_encode(sentences, vocab, max(len(s) for s in sentences) + 2 * KIM_PAD)

  dev_ids, test_ids = fixed(dev_x), fixed(test_x)
  model = KimCNN(len(vocab) + 1)
  model.compile(optimizer=keras.optimizers.Adadelta(learning_rate=1.0, rho=0.95,
                                                    epsilon=1e-6),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])

  best = {"value": -1.0, "weights": None}

  def accuracy_percent(ids, y):
    got = model.evaluate(ids, y, batch_size=1000, verbose=0, return_dict=True)
    return round(100.0 * got["accuracy"], 4)

  def dev_accuracy():  # and keep the best epoch's weights (early stopping on dev)
    value = accuracy_percent(dev_ids, dev_y)
    if value >= best["value"]:  # Kim's code: a tie takes the later epoch
      best.update(value=value, weights=model.get_weights())
    return value

  evals = TimedEvals("kim_cnn", t0, deadline, dev_accuracy, lambda batch: KIM_BATCH)
  model.fit(train, epochs=KIM_EPOCHS, verbose=0, callbacks=[evals])
  model.set_weights(best["weights"])
  test = accuracy_percent(test_ids, test_y)
  print(f"kim_cnn test accuracy {test:.2f} (weights of the best validation epoch, "
        f"{best['value']:.2f})", flush=True)
  return {"metric": "accuracy", "target": 82.0, "higher_is_better": True,
          "curve": evals.points, "test": test, "params": trainable_params(model),
          "examples_unit": "sentences", "vocab_size": len(vocab) + 1,
          "test_weights": "best validation epoch"}


# --- driver --------------------------------------------------------------------------

def trainable_params(model):
  # Unique variables: the tied embedding counts once.
  return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--peer", required=True, choices=PEERS)
  ap.add_argument("--manual_dir", required=True,
                  help="raw data: mnist/mnist.npz, tinyshakespeare/input.txt, sst2/*.tsv")
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--out", required=True, help="result JSON")
  ap.add_argument("--t0", type=float, default=T_START,
                  help="unix time the caller spawned this process (default: its start)")
  ap.add_argument("--budget_minutes", type=float, default=None,
                  help="wall budget since t0 (default: mnist_convnet 15, babygpt and "
                       "kim_cnn 8)")
  args = ap.parse_args()
  budget = (DEFAULT_BUDGET_MINUTES[args.peer] if args.budget_minutes is None
            else args.budget_minutes)

  keras.utils.set_random_seed(args.seed)
  run = {"mnist_convnet": mnist_convnet, "babygpt": babygpt, "kim_cnn": kim_cnn}[args.peer]
  result = run(args, args.t0, args.t0 + 60.0 * budget)

  better = max if result["higher_is_better"] else min
  reached = [p for p in result["curve"]
             if (p["value"] >= result["target"] if result["higher_is_better"]
                 else p["value"] <= result["target"])]
  out = {
      "peer": args.peer, "seed": args.seed, "metric": result.pop("metric"),
      "target": result.pop("target"), "higher_is_better": result.pop("higher_is_better"),
      "budget_minutes": budget, "t0": args.t0,
      "first_at_target": reached[0] if reached else None,
      "best": better(p["value"] for p in result["curve"]) if result["curve"] else None,
      "test": result.pop("test"), "params": result.pop("params"),
      "curve": result.pop("curve"), **result,
      "command": shlex.join([sys.executable] + sys.argv),
  }
  out["total_wall_s"] = round(time.time() - args.t0, 3)
  runlib.write_json(args.out, out)
  print(f"{args.peer}: best {out['best']}, test {out['test']}, first at target "
        f"{out['first_at_target']}, total {out['total_wall_s']:.1f}s -> {args.out}",
        flush=True)


if __name__ == "__main__":
  main()

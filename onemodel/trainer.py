"""The training loop: GradientTape inside `strategy.run`, checkpoints, summaries, progress.

Written against `tf.distribute.Strategy` (Orbit's shape): a single-replica step, the loss
divided by the *global* number of target tokens so that summing replica gradients gives
the gradient of the global mean, and the framework's own step counter (Keras'
`optimizer.iterations` undercounts under async training; see STACK.md).
"""

import dataclasses
import json
import logging
import os
import sys
import time
from typing import Optional

import gin
import tensorflow as tf

from onemodel import data as data_lib
from onemodel import evaluation
from onemodel import fileio
from onemodel import model as model_lib
from onemodel import optim
from onemodel import registry
from onemodel.errors import UserError


@gin.configurable
@dataclasses.dataclass
class TrainConfig:
  """What to train and for how long (see gin/runs/*.gin)."""
  problem: str = ""
  train_steps: int = 1000
  batch_size: int = 32
  # Token-budget batching for text problems (0: off): buckets of about this many tokens
  # per replica, padded to the smallest boundary that fits (see data.bucket_by_length).
  batch_tokens: int = 0
  bucket_boundaries: tuple = (8, 12, 16, 20, 24, 32, 48)
  eval_batch_size: int = 128
  steps_per_loop: int = 10          # train steps per tf.function call (less Python overhead)
  log_every_steps: int = 100
  checkpoint_every_steps: int = 1000
  keep_checkpoints: int = 3
  eval_every_steps: int = 0         # 0: evaluate only at the end
  eval_role: str = "eval"           # split role for periodic evaluation
  final_eval_role: str = "test"     # split role for the final evaluation ('' = none)
  eval_max_examples: int = 0        # 0: the whole split
  label_smoothing: float = 0.0
  jit_compile: bool = False
  seed: int = 0


def check_output_dir(output_dir: str) -> None:
  """Fails early, with the directory's name, if the output dir is not writable."""
  if not output_dir:
    raise UserError("--output_dir is required")
  try:
    os.makedirs(output_dir, exist_ok=True)
    probe = os.path.join(output_dir, ".onemodel_write_probe")
    with open(probe, "w") as f:
      f.write("ok")
    os.unlink(probe)
  except OSError as e:
    raise UserError(f"output dir {output_dir} is not writable: {e.strerror or e}") from e


class Progress:
  """One line per `log_every_steps`: step, loss, steps/s and ETA (also on a non-TTY)."""

  def __init__(self, total: int, start_step: int):
    self.total, self.start_step, self.t0 = total, start_step, time.time()
    self.last_t, self.last_step = self.t0, start_step

  def update(self, step: int, loss: float, extra: str = "") -> float:
    now = time.time()
    rate = (step - self.last_step) / max(now - self.last_t, 1e-9)
    self.last_t, self.last_step = now, step
    eta = (self.total - step) / max(rate, 1e-9)
    print(f"step {step}/{self.total} | loss {loss:.4f} | {rate:.2f} steps/s | "
          f"ETA {int(eta // 60)}m{int(eta % 60):02d}s{extra}", flush=True)
    return rate


def restore_or_init(checkpoint, manager, path: Optional[str] = None) -> Optional[str]:
  path = path or manager.latest_checkpoint
  if path:
    checkpoint.restore(path).expect_partial()
  return path


class Trainer:
  """Builds everything for one problem and runs train + eval in `output_dir`."""

  def __init__(self, output_dir: str, data_dir: str, manual_dir: str,
               strategy: Optional[tf.distribute.Strategy] = None,
               cfg: Optional[TrainConfig] = None):
    self.cfg = cfg or TrainConfig()
    if not self.cfg.problem:
      raise UserError("no problem to train: set the gin binding TrainConfig.problem "
                      "(e.g. --gin_param=\"TrainConfig.problem='mnist'\")")
    self.output_dir, self.data_dir = output_dir, data_dir
    self.problem = registry.get_problem(self.cfg.problem)
    check_output_dir(output_dir)
    data_lib.prepare(self.problem, data_dir, manual_dir)
    self.vocab = data_lib.get_vocab(self.problem, data_dir)
    self.strategy = strategy or tf.distribute.OneDeviceStrategy("/cpu:0")
    tf.keras.utils.set_random_seed(self.cfg.seed)
    with self.strategy.scope():
      self.model = model_lib.build([self.problem], {self.problem.name: self.vocab})
      self.optimizer = optim.optimizer(self.cfg.train_steps)
      if hasattr(self.optimizer, "exclude_from_weight_decay"):
        self.optimizer.exclude_from_weight_decay(var_names=["norm", "bias", "_pos"])
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer,
                                          step=self.step)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, os.path.join(output_dir, "checkpoints"),
        max_to_keep=self.cfg.keep_checkpoints)

  def _dataset(self, ctx: tf.distribute.InputContext):
    per_replica = ctx.get_per_replica_batch_size(self.cfg.batch_size)
    ds = data_lib.dataset(self.problem, "train", self.data_dir, per_replica, training=True,
                          vocab=self.vocab, seed=self.cfg.seed,
                          batch_tokens=self.cfg.batch_tokens // ctx.num_replicas_in_sync,
                          bucket_boundaries=self.cfg.bucket_boundaries)
    return ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id) \
        if ctx.num_input_pipelines > 1 else ds

  def _build_variables(self, iterator):
    """Creates model and optimizer variables before any tf.function traces."""
    batch = next(iterator)
    def _forward(b):
      return self.model(b, problem=self.problem.name, training=False)
    self.strategy.run(_forward, (batch,))
    with self.strategy.scope():
      self.optimizer.build(self.model.trainable_variables)

  def restore(self, checkpoint: str = "") -> str:
    """Creates the variables and restores `checkpoint` (default: the run's latest)."""
    path = checkpoint or self.manager.latest_checkpoint
    if not path:
      raise UserError(f"no checkpoint in {os.path.join(self.output_dir, 'checkpoints')}")
    if not tf.io.gfile.exists(path + ".index"):
      raise UserError(f"checkpoint {path} does not exist")
    iterator = iter(self.strategy.distribute_datasets_from_function(self._dataset))
    self._build_variables(iterator)
    restore_or_init(self.checkpoint, self.manager, path)
    return path

  def _make_train_loop(self):
    model, opt, name = self.model, self.optimizer, self.problem.name
    ls = self.cfg.label_smoothing

    def step_fn(batch):
      with tf.GradientTape() as tape:
        logits = model(batch, problem=name, training=True)
        loss_sum, tokens = model_lib.token_loss(logits, batch["targets"], ls)
        # Normalize by the token count of the *global* batch: the strategy sums the
        # replicas' gradients, so this yields the gradient of the global mean loss.
        ctx = tf.distribute.get_replica_context()
        global_tokens = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tokens)
        loss = loss_sum / tf.maximum(global_tokens, 1.0)
      grads = tape.gradient(loss, model.trainable_variables)
      opt.apply_gradients(zip(grads, model.trainable_variables))
      return loss_sum, tokens

    if self.cfg.jit_compile:
      step_fn = tf.function(step_fn, jit_compile=True)

    @tf.function
    def train_loop(iterator, num_steps):
      total = tf.constant(0.0)
      count = tf.constant(0.0)
      for _ in tf.range(num_steps):
        s, c = self.strategy.run(step_fn, (next(iterator),))
        total += self.strategy.reduce(tf.distribute.ReduceOp.SUM, s, axis=None)
        count += self.strategy.reduce(tf.distribute.ReduceOp.SUM, c, axis=None)
        self.step.assign_add(1)
      return total / tf.maximum(count, 1.0)

    return train_loop

  def _write_config(self, name: str, text: str):
    fileio.atomic_write_text(os.path.join(self.output_dir, name), text)

  def evaluate(self, role: str, step: int, writer=None, tag: str = ""):
    ev = evaluation.Evaluator(self.model, self.problem, self.vocab, self.data_dir,
                              self.cfg.eval_batch_size)
    results = ev.evaluate(role, self.cfg.eval_max_examples)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(results.items()))
    print(f"eval {self.problem.name} {role} @ step {step}: {shown}", flush=True)
    if writer is not None:
      with writer.as_default():
        for k, v in results.items():
          tf.summary.scalar(f"{self.problem.name}/{role}/{k}", v, step=step)
    fileio.atomic_write_json(
        os.path.join(self.output_dir,
                     f"metrics_{role}{'_' + tag if tag else ''}_step{step}.json"),
        {"problem": self.problem.name, "split": role, "step": step, "tag": tag,
         "metrics": results})
    return results

  def train(self):
    cfg = self.cfg
    self._write_config("config.gin", gin.config_str())
    iterator = iter(self.strategy.distribute_datasets_from_function(self._dataset))
    self._build_variables(iterator)
    restored = restore_or_init(self.checkpoint, self.manager)
    start = int(self.step.numpy())
    if restored:
      print(f"resumed from {restored} at step {start}", flush=True)
    writer = tf.summary.create_file_writer(os.path.join(self.output_dir, "train"))
    eval_writer = tf.summary.create_file_writer(os.path.join(self.output_dir, "eval"))
    loop = self._make_train_loop()
    progress = Progress(cfg.train_steps, start)
    step, loss = start, float("nan")
    wrote_operative = False
    while step < cfg.train_steps:
      n = min(cfg.steps_per_loop, cfg.train_steps - step,
              cfg.log_every_steps - step % cfg.log_every_steps)
      loss = float(loop(iterator, tf.constant(n)))
      step = int(self.step.numpy())
      if not wrote_operative:
        self._write_config("operative_config.gin", gin.operative_config_str())
        with writer.as_default():
          tf.summary.text("operative_config", gin.operative_config_str(), step=step)
        wrote_operative = True
      if step % cfg.log_every_steps == 0 or step == cfg.train_steps:
        rate = progress.update(step, loss)
        lr = self.optimizer.learning_rate
        with writer.as_default():
          tf.summary.scalar("loss", loss, step=step)
          tf.summary.scalar("steps_per_sec", rate, step=step)
          tf.summary.scalar("learning_rate", float(lr.numpy() if hasattr(lr, "numpy")
                                                   else lr), step=step)
      if step % cfg.checkpoint_every_steps == 0 or step == cfg.train_steps:
        self.manager.save(checkpoint_number=step)
      if cfg.eval_every_steps and step % cfg.eval_every_steps == 0 \
          and step != cfg.train_steps:
        self.evaluate(cfg.eval_role, step, eval_writer)
    if self.manager.latest_checkpoint is None or \
        not self.manager.latest_checkpoint.endswith(f"-{step}"):
      self.manager.save(checkpoint_number=step)
    results = None
    if cfg.final_eval_role:
      results = self.evaluate(cfg.final_eval_role, step, eval_writer)
    writer.flush()
    eval_writer.flush()
    return {"step": step, "loss": loss, "eval": results}

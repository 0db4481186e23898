"""The training loop: GradientTape inside `strategy.run`, checkpoints, summaries, progress.

Written against `tf.distribute.Strategy` (Orbit's shape): a single-replica step, the loss
divided by the *global* number of target tokens so that summing replica gradients gives
the gradient of the global mean, and the framework's own step counter (Keras'
`optimizer.iterations` undercounts under async training; see STACK.md).
"""

import dataclasses
import functools
import os
import time
from typing import Any, Optional

import gin
import tensorflow as tf

from onemodel import data as data_lib
from onemodel import distribute
from onemodel import evaluation
from onemodel import fileio
from onemodel import mixtures
from onemodel import model as model_lib
from onemodel import moe
from onemodel import noise_scale as noise_scale_lib
from onemodel import optim
from onemodel import precision
from onemodel import pruning
from onemodel import throughput
from onemodel.errors import UserError


@gin.configurable
@dataclasses.dataclass
class TrainConfig:
  """What to train and for how long (see gin/experiments/*.gin)."""
  problem: Any = ""                 # a problem or mixture name, or a gin @Mixture()
  train_steps: int = 1000
  batch_size: int = 32
  # Token-budget batching for text problems (0: off): buckets of about this many tokens
  # per replica, padded to the smallest boundary that fits (see data.bucket_by_length).
  batch_tokens: int = 0
  bucket_boundaries: tuple = (8, 12, 16, 20, 24, 32, 48)
  # Sequence packing for text problems: several examples per row, attention kept within
  # each (segment ids/positions); rows have the problem's fixed lengths.
  pack: bool = False
  # Per-problem overrides inside a mixture, e.g. {'fsdd': {'batch_size': 32},
  # 'multi30k_en_de': {'batch_tokens': 2048, 'label_smoothing': 0.1}}.
  per_problem: dict = dataclasses.field(default_factory=dict)
  # Gradient accumulation: each optimizer update averages the gradient over this many
  # micro-batches of `batch_size` (the same update as one batch k times larger).
  grad_accum_steps: int = 1
  # Gradient noise scale B_simple (McCandlish et al. 2018, App. A), measured online from
  # the micro-batch and accumulated gradients (needs grad_accum_steps >= 2).
  noise_scale: bool = False
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
  deterministic: bool = False       # same example order every run (slower input)
  cache: bool = False               # keep prepared features (log-mel, ids) in memory
  report_mfu: bool = True           # measure the matmul peak once (cached) and log MFU


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


STAT_KEYS = ("loss_sum", "tokens", "examples", "enc_tokens", "dec_tokens", "enc_attn",
             "dec_attn", "cross_attn")
NOISE_KEYS = ("ns_small", "ns_bsmall", "ns_big", "ns_bbig", "ns_count")
MOE_KEYS = ("moe_dropped", "moe_routed")


class Progress:
  """One line per `log_every_steps`: step, loss, steps/s, examples/s, target tokens/s,
  MFU against the measured matmul peak, and ETA (also on a non-TTY)."""

  def __init__(self, total: int, start_step: int, peak_gflops: float = 0.0, cfg=None,
               vocab_size: int = 0):
    self.total, self.start_step, self.t0 = total, start_step, time.time()
    self.last_t, self.last_step = self.t0, start_step
    self.peak, self.cfg, self.vocab_size = peak_gflops, cfg, vocab_size
    self.sums, self.flops = {}, 0.0

  def add(self, stats, vocab_size: int = 0):
    """Adds summed step statistics (of steps whose output vocabulary is vocab_size)."""
    for k, v in stats.items():
      self.sums[k] = self.sums.get(k, 0.0) + v
    if self.peak and self.cfg is not None:
      self.flops += throughput.step_flops(self.cfg, stats, vocab_size or self.vocab_size)

  def update(self, step: int, loss: float, extra: str = ""):
    now = time.time()
    dt = max(now - self.last_t, 1e-9)
    rate = (step - self.last_step) / dt
    self.last_t, self.last_step = now, step
    eta = (self.total - step) / max(rate, 1e-9)
    scalars, shown = {}, ""
    if self.sums:
      scalars = {"examples_per_sec": self.sums.get("examples", 0.0) / dt,
                 "tokens_per_sec": self.sums.get("tokens", 0.0) / dt}
      shown = (f" | {scalars['examples_per_sec']:.0f} ex/s | "
               f"{scalars['tokens_per_sec']:.0f} tok/s")
      if self.peak and self.cfg is not None:
        scalars["model_gflops_per_sec"] = self.flops / dt / 1e9
        scalars["mfu"] = scalars["model_gflops_per_sec"] / self.peak
        shown += f" | MFU {100 * scalars['mfu']:.0f}%"
      self.sums, self.flops = {}, 0.0
    print(f"step {step}/{self.total} | loss {loss:.4f} | {rate:.2f} steps/s{shown} | "
          f"ETA {int(eta // 60)}m{int(eta % 60):02d}s{extra}", flush=True)
    return rate, scalars


def _wait_until_prepared(problem, data_dir, timeout_s=1800):
  """Non-chief workers wait for the chief to prepare the data (shared filesystem)."""
  deadline = time.time() + timeout_s
  while not data_lib.is_prepared(problem, data_dir):
    if time.time() > deadline:
      raise UserError(f"problem {problem.name} was not prepared in {data_dir} by the "
                      "chief; run onemodel-prepare first")
    time.sleep(2)


def restore_or_init(checkpoint, manager, path: Optional[str] = None) -> Optional[str]:
  path = path or manager.latest_checkpoint
  if path:
    checkpoint.restore(path).expect_partial()
  return path


class Trainer:
  """Builds everything for one problem or a mixture and runs train + eval in
  `output_dir`. A mixture trains one model on all its problems: each step draws one
  problem (`mixtures.Sampler`) and runs that problem's step on the shared weights."""

  def __init__(self, output_dir: str, data_dir: str, manual_dir: str,
               strategy: Optional[tf.distribute.Strategy] = None,
               cfg: Optional[TrainConfig] = None):
    self.cfg = cfg or TrainConfig()
    if not self.cfg.problem:
      raise UserError("no problem to train: set the gin binding TrainConfig.problem "
                      "(e.g. --gin_param=\"TrainConfig.problem='mnist'\")")
    self.output_dir, self.data_dir = output_dir, data_dir
    self.problems, self.mixture = mixtures.resolve(self.cfg.problem)
    self.problem = self.problems[0]
    self.name = self.mixture.name if self.mixture else self.problem.name
    self.strategy = strategy or tf.distribute.OneDeviceStrategy("/cpu:0")
    self.is_chief = distribute.is_chief()
    self.is_async = isinstance(self.strategy, tf.distribute.ParameterServerStrategy)
    check_output_dir(output_dir)
    for p in self.problems:
      if self.is_chief:
        data_lib.prepare(p, data_dir, manual_dir)
      else:
        _wait_until_prepared(p, data_dir)
    self.vocabs, vocab_keys = data_lib.get_vocabs(self.problems, data_dir)
    self.vocab = self.vocabs[self.problem.name]
    self.sampler = None
    if self.mixture:
      self.sampler = mixtures.Sampler(
          self.mixture, [p.name for p in self.problems],
          [data_lib.train_size(p, data_dir) for p in self.problems], self.cfg.seed)
    self._evaluators = {}
    self._check_config()
    precision.apply()  # gin: precision.policy ('float32' or 'mixed_bfloat16')
    tf.keras.utils.set_random_seed(self.cfg.seed)
    k = self.cfg.grad_accum_steps
    self.stat_keys = STAT_KEYS + (NOISE_KEYS if self.cfg.noise_scale else ()) + \
        (MOE_KEYS if self.model_uses_moe() else ())
    self.noise = noise_scale_lib.NoiseScale() if self.cfg.noise_scale else None
    self.pruner = None
    with self.strategy.scope():
      self.model = model_lib.build(self.problems, self.vocabs, vocab_keys)
      self.optimizer, self.clipnorm = optim.optimizer(
          self.cfg.train_steps, effective_batch=self.cfg.batch_size * k)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
      # Parameter-server training: how many updates the variables have seen, to measure
      # gradient staleness (updates applied between reading and updating the weights).
      self.version = tf.Variable(0, dtype=tf.int64, trainable=False, name="version")
      # Steps each problem received over the whole run (checkpointed with it).
      self.problem_steps = tf.Variable(tf.zeros([len(self.problems)], tf.int64),
                                       trainable=False, name="problem_steps")
    self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer,
                                          step=self.step, problem_steps=self.problem_steps)
    # Under multi-worker training every worker saves (the save is collective); only the
    # chief writes into the run, the others into a scratch directory.
    ckpt_dir = os.path.join(output_dir, "checkpoints") if self.is_chief else \
        os.path.join(output_dir, ".worker_scratch", "%s_%d" % distribute.task())
    self.manager = tf.train.CheckpointManager(self.checkpoint, ckpt_dir,
                                              max_to_keep=self.cfg.keep_checkpoints)
    if not self.is_chief:  # restore from the chief's checkpoints
      self.chief_manager = tf.train.CheckpointManager(
          self.checkpoint, os.path.join(output_dir, "checkpoints"), max_to_keep=None)

  @staticmethod
  def model_uses_moe() -> bool:
    from onemodel import backbone
    return backbone.BackboneConfig().ffn == "moe"

  def _setting(self, problem_name: str, key: str):
    """TrainConfig's `key` for one problem: its per_problem override, else the default."""
    return self.cfg.per_problem.get(problem_name, {}).get(key, getattr(self.cfg, key))

  def _check_config(self):
    c = self.cfg
    allowed = {"batch_size", "batch_tokens", "label_smoothing"}
    for name, over in c.per_problem.items():
      if name not in [p.name for p in self.problems]:
        raise UserError(f"gin binding TrainConfig.per_problem names {name!r}, which is not "
                        f"trained here ({', '.join(p.name for p in self.problems)})")
      bad = sorted(set(over) - allowed)
      if bad:
        raise UserError(f"gin binding TrainConfig.per_problem[{name!r}]: unknown keys "
                        f"{', '.join(bad)} (allowed: {', '.join(sorted(allowed))})")
    if c.grad_accum_steps < 1:
      raise UserError(f"gin binding TrainConfig.grad_accum_steps={c.grad_accum_steps}: "
                      "must be >= 1")
    if c.grad_accum_steps > 1 and c.batch_tokens:
      raise UserError("gin bindings TrainConfig.grad_accum_steps > 1 and "
                      "TrainConfig.batch_tokens exclude each other (accumulated micro-"
                      "batches need one shape); use batch_size or pack=True")
    if c.noise_scale and c.grad_accum_steps < 2:
      raise UserError("gin binding TrainConfig.noise_scale=True needs two batch sizes: "
                      "set TrainConfig.grad_accum_steps >= 2")
    if c.cache:
      for p in self.problems:
        if p.augment is not None:
          raise UserError(f"gin binding TrainConfig.cache=True: problem {p.name} augments "
                          "raw inputs every epoch (Problem.augment), so its features "
                          "cannot be cached; turn the cache off")
    if c.pack:
      for p in self.problems:
        bad = [r for r, spec in p.features() if spec.modality != "text"]
        if bad:
          raise UserError(f"gin binding TrainConfig.pack=True: problem {p.name} has "
                          f"non-text {', '.join(bad)}; packing is for text problems")
      if c.batch_tokens:
        raise UserError("gin bindings TrainConfig.pack and TrainConfig.batch_tokens "
                        "exclude each other")

  def _dataset(self, ctx: tf.distribute.InputContext, problem=None):
    problem = problem or self.problem
    per_replica = ctx.get_per_replica_batch_size(self._setting(problem.name, "batch_size"))
    batch_tokens = self._setting(problem.name, "batch_tokens")
    ds = data_lib.dataset(problem, "train", self.data_dir, per_replica, training=True,
                          vocab=self.vocabs[problem.name], seed=self.cfg.seed,
                          batch_tokens=batch_tokens // ctx.num_replicas_in_sync,
                          bucket_boundaries=self.cfg.bucket_boundaries,
                          deterministic=self.cfg.deterministic, pack=self.cfg.pack,
                          cache=self.cfg.cache)
    if self.cfg.grad_accum_steps > 1:  # [k, b, ...]: the micro-batches of one update
      ds = ds.batch(self.cfg.grad_accum_steps, drop_remainder=True)
    return ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id) \
        if ctx.num_input_pipelines > 1 else ds

  def _iterators(self):
    """One distributed input iterator per problem."""
    return {p.name: iter(self.strategy.distribute_datasets_from_function(
        functools.partial(self._dataset, problem=p))) for p in self.problems}

  def _build_variables(self, iterators=None):
    """Creates model and optimizer variables before any tf.function traces."""
    for p in self.problems:
      if self.is_async:  # the coordinator builds from a local batch
        batch = next(iter(self._dataset(tf.distribute.InputContext(), p)))
        with self.strategy.scope():
          self.model(batch, problem=p.name, training=False)
      else:
        def _forward(b, name=p.name):
          if self.cfg.grad_accum_steps > 1:
            b = tf.nest.map_structure(lambda x: x[0], b)
          return self.model(b, problem=name, training=False)
        self.strategy.run(_forward, (next(iterators[p.name]),))
    with self.strategy.scope():
      if hasattr(self.optimizer, "exclude_from_weight_decay"):
        # By object: Keras 3 variable *names* are bare ('gamma', 'kernel').
        self.optimizer.exclude_from_weight_decay(var_list=[
            v for v in self.model.trainable_variables
            if len(v.shape) < 2 or v.path.endswith("_pos") or "norm" in v.path])
      self.optimizer.build(self.model.trainable_variables)
      self.pruner = pruning.maybe_pruner(self.model)
    # Model weights by their Keras paths (Keras 3 layers held in lists are not
    # checkpoint dependencies of the model), and the pruning masks.
    self.checkpoint.weights = {v.path: v for v in self.model.variables}
    if self.pruner is not None:
      self.checkpoint.pruner = self.pruner

  def restore(self, checkpoint: str = "") -> str:
    """Creates the variables and restores `checkpoint` (default: the run's latest)."""
    path = checkpoint or self.manager.latest_checkpoint
    if not path:
      raise UserError(f"no checkpoint in {os.path.join(self.output_dir, 'checkpoints')}")
    if not tf.io.gfile.exists(path + ".index"):
      raise UserError(f"checkpoint {path} does not exist")
    self._build_variables(None if self.is_async else self._iterators())
    restore_or_init(self.checkpoint, self.manager, path)
    return path

  def _step_fn(self, name: str = ""):
    """One replica's training step (one optimizer update) on problem `name`: the only
    place gradients are taken. With grad_accum_steps = k the batch holds k micro-batches
    ([k, b, ...]); their gradients are summed before the update, each micro-batch's loss
    divided by the token count of all k micro-batches of all replicas, so the update
    equals that of one batch k times larger."""
    model, opt, name = self.model, self.optimizer, name or self.problem.name
    ls, clipnorm = self._setting(name, "label_smoothing"), self.clipnorm
    k = self.cfg.grad_accum_steps
    use_moe, measure_noise = "moe_dropped" in self.stat_keys, self.cfg.noise_scale
    variables = model.trainable_variables

    def micro_step(batch, global_tokens):
      """-> (loss_sum, tokens, gradients or None per variable, MoE statistics)."""
      with tf.GradientTape() as tape:
        if use_moe:
          moe.reset_aux(model)
        logits = model(batch, problem=name, training=True)
        loss_sum, tokens = model_lib.token_loss(logits, batch["targets"], ls)
        loss = loss_sum / tf.maximum(global_tokens, 1.0)
        aux = moe.collect_aux(model) if use_moe else None
        if use_moe:
          ctx = tf.distribute.get_replica_context()
          loss += aux["loss"] / (ctx.num_replicas_in_sync * k)
      return loss_sum, tokens, tape.gradient(loss, variables), aux

    def step_fn(batch):
      ctx = tf.distribute.get_replica_context()
      local_tokens = tf.reduce_sum(tf.cast(batch["targets"] != 0, tf.float32))
      # Normalize by the token count of the *global* batch: the strategy sums the
      # replicas' gradients, so this yields the gradient of the global mean loss.
      global_tokens = ctx.all_reduce(tf.distribute.ReduceOp.SUM, local_tokens)
      micro = (lambda j: tf.nest.map_structure(lambda x: x[j], batch)) if k > 1 else \
          (lambda j: batch)
      loss_sum, tokens, grads, aux = micro_step(micro(0), global_tokens)
      live = [i for i, g in enumerate(grads) if g is not None]  # static per problem
      acc = [tf.convert_to_tensor(grads[i]) for i in live]
      sq_small = noise_scale_lib.squared_norm(acc) * (global_tokens / tokens) ** 2 \
          if measure_noise else tf.constant(0.0)
      dropped = aux["dropped_tokens"] if use_moe else tf.constant(0.0)
      routed = aux["routed_tokens"] if use_moe else tf.constant(0.0)
      if k > 1:
        for j in tf.range(1, k):
          l_j, t_j, g_j, aux_j = micro_step(micro(j), global_tokens)
          acc = [a + tf.convert_to_tensor(g_j[i]) for a, i in zip(acc, live)]
          loss_sum, tokens = loss_sum + l_j, tokens + t_j
          if measure_noise:
            sq_small += noise_scale_lib.squared_norm(
                [g_j[i] for i in live]) * (global_tokens / t_j) ** 2
          if use_moe:
            dropped += aux_j["dropped_tokens"]
            routed += aux_j["routed_tokens"]
      stats = {}
      if measure_noise:  # per-replica estimates; the loop sums them, Python averages
        stats.update(ns_small=sq_small / k, ns_bsmall=tokens / k,
                     ns_big=noise_scale_lib.squared_norm(acc) * (global_tokens / tokens) ** 2,
                     ns_bbig=tokens, ns_count=tf.constant(1.0))
      if use_moe:
        stats.update(moe_dropped=dropped, moe_routed=routed)
      grads = [None] * len(variables)
      for i, g in zip(live, acc):
        grads[i] = g
      if clipnorm:
        clipped = optim.clip_global_gradient([grads[i] for i in live], clipnorm)
        for i, g in zip(live, clipped):
          grads[i] = g
      opt.apply_gradients([(grads[i], variables[i]) for i in live])
      one = micro(0)
      shape = tf.shape(one["targets"])
      stats.update(throughput.batch_shapes(model.encoded_length(name, one), shape[1],
                                           shape[0] * k))
      examples = tf.cast(shape[0] * k, tf.float32)
      if "targets_segment_ids" in one:  # packed rows: count the examples in them
        examples = tf.reduce_sum(tf.reduce_max(tf.cast(batch["targets_segment_ids"],
                                                       tf.float32), axis=-1))
      stats.update(loss_sum=loss_sum, tokens=tokens, examples=examples)
      return stats

    if self.cfg.jit_compile:
      step_fn = tf.function(step_fn, jit_compile=True)
    return step_fn

  def _make_train_loop(self, index: int = 0):
    step_fn = self._step_fn(self.problems[index].name)

    keys, pruner = self.stat_keys, self.pruner

    @tf.function
    def train_loop(iterator, num_steps):
      """`num_steps` steps in one call (no per-step Python); -> summed step statistics."""
      totals = {k: tf.constant(0.0) for k in keys}
      for _ in tf.range(num_steps):
        stats = self.strategy.run(step_fn, (next(iterator),))
        totals = {k: totals[k] + self.strategy.reduce(tf.distribute.ReduceOp.SUM, stats[k],
                                                      axis=None) for k in keys}
        self.step.assign_add(1)
        if pruner is not None:  # Zhu & Gupta schedule, then keep pruned weights at zero
          pruner.update(self.step)
          pruner.apply()
      self.problem_steps.assign_add(
          tf.one_hot(index, len(self.problems), dtype=tf.int64) * tf.cast(num_steps, tf.int64))
      return totals

    return train_loop

  def _write_config(self, name: str, text: str):
    if self.is_chief:
      fileio.atomic_write_text(os.path.join(self.output_dir, name), text)

  def _writer(self, name):
    if not self.is_chief:
      return tf.summary.create_noop_writer()
    return tf.summary.create_file_writer(os.path.join(self.output_dir, name))

  def evaluate(self, role: str, step: int, writer=None, tag: str = ""):
    """Each problem's metrics on its `role` split -> {metric: value} for one problem,
    {problem: {metric: value}} for a mixture. Also printed, written to TensorBoard and
    to OUTPUT_DIR/metrics_ROLE[_TAG][_PROBLEM]_stepN.json."""
    out = {}
    for p in self.problems:
      if p.name not in self._evaluators:  # compiled once, reused at every evaluation
        self._evaluators[p.name] = evaluation.Evaluator(
            self.model, p, self.vocabs[p.name], self.data_dir, self.cfg.eval_batch_size)
      results = self._evaluators[p.name].evaluate(role, self.cfg.eval_max_examples)
      shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(results.items()))
      print(f"eval {p.name} {role} @ step {step}: {shown}", flush=True)
      if writer is not None:
        with writer.as_default():
          for k, v in results.items():
            tf.summary.scalar(f"{p.name}/{role}/{k}", v, step=step)
      name = f"metrics_{role}{'_' + tag if tag else ''}" + \
          (f"_{p.name}" if self.mixture else "") + f"_step{step}.json"
      fileio.atomic_write_json(
          os.path.join(self.output_dir, name),
          {"problem": p.name, "mixture": self.name if self.mixture else None,
           "split": role, "step": step, "tag": tag, "metrics": results})
      out[p.name] = results
    return out if self.mixture else out[self.problem.name]

  def _restore_latest(self):
    manager = self.manager if self.is_chief else self.chief_manager
    restored = restore_or_init(self.checkpoint, manager)
    if restored:
      print(f"resumed from {restored} at step {int(self.step.numpy())}", flush=True)
    return restored

  def _finish(self, step, loss, writer, eval_writer):
    if self.manager.latest_checkpoint is None or \
        not self.manager.latest_checkpoint.endswith(f"-{step}"):
      self.manager.save(checkpoint_number=step)
    results = None
    if self.cfg.final_eval_role and self.is_chief:
      results = self.evaluate(self.cfg.final_eval_role, step, eval_writer)
    writer.flush()
    eval_writer.flush()
    if isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
      # A last collective: no worker leaves while the chief is still evaluating (the
      # coordination service would report the departed worker as crashed).
      tf.function(lambda: self.strategy.reduce(
          tf.distribute.ReduceOp.SUM, self.strategy.run(lambda: tf.constant(1.0)),
          axis=None))()
    return {"step": step, "loss": loss, "eval": results}

  def train(self):
    self._write_config("config.gin", gin.config_str())
    if self.is_async:
      from onemodel import async_training
      return async_training.train(self)
    cfg = self.cfg
    iterators = self._iterators()
    self._build_variables(iterators)
    self._restore_latest()
    start = int(self.step.numpy())
    writer, eval_writer = self._writer("train"), self._writer("eval")
    loops = [self._make_train_loop(i) for i in range(len(self.problems))]
    vocab_sizes = [self.model.target_embedding(p.name).vocab_size for p in self.problems]
    progress = Progress(cfg.train_steps, start, self._peak_gflops(), self.model.cfg,
                        vocab_sizes[0])
    per_problem = {}  # problem index -> [loss_sum, tokens] since the last log line
    moe_sums = [0.0, 0.0]  # MoE tokens dropped (over capacity) and routed since the log
    step, loss = start, float("nan")
    wrote_operative = False
    while step < cfg.train_steps:
      n = min(cfg.steps_per_loop, cfg.train_steps - step,
              cfg.log_every_steps - step % cfg.log_every_steps)
      runs = self.sampler.runs(step, n) if self.sampler else [(0, n)]
      chunk = {}
      for i, count in runs:
        stats = {k: float(v) for k, v in loops[i](iterators[self.problems[i].name],
                                                   tf.constant(count)).items()}
        progress.add(stats, vocab_sizes[i])
        sums = per_problem.setdefault(i, [0.0, 0.0])
        sums[0] += stats["loss_sum"]
        sums[1] += stats["tokens"]
        for k, v in stats.items():
          chunk[k] = chunk.get(k, 0.0) + v
      loss = chunk["loss_sum"] / max(chunk["tokens"], 1.0)
      step = int(self.step.numpy())
      if self.noise is not None and chunk.get("ns_count"):
        c = chunk["ns_count"]
        self.noise.update(chunk["ns_small"] / c, chunk["ns_bsmall"] / c,
                          chunk["ns_big"] / c, chunk["ns_bbig"] / c)
      if "moe_routed" in chunk:
        moe_sums = [moe_sums[0] + chunk["moe_dropped"], moe_sums[1] + chunk["moe_routed"]]
      if not wrote_operative:
        self._write_config("operative_config.gin", gin.operative_config_str())
        with writer.as_default():
          tf.summary.text("operative_config", gin.operative_config_str(), step=step)
        wrote_operative = True
      if step % cfg.log_every_steps == 0 or step == cfg.train_steps:
        shown, extra_scalars = "", {}
        if self.mixture:
          extra_scalars, shown = self._mixture_scalars(per_problem)
        if self.noise is not None and self.noise.b_simple is not None:
          extra_scalars.update(noise_scale_tokens=self.noise.b_simple,
                               grad_sq_norm=self.noise.g2, grad_trace_sigma=self.noise.trace_sigma)
          shown += f" | B_simple {self.noise.b_simple:.0f} tok"
        if moe_sums[1]:
          extra_scalars["moe_dropped_fraction"] = moe_sums[0] / moe_sums[1]
          shown += f" | MoE dropped {100 * moe_sums[0] / moe_sums[1]:.1f}%"
        if self.pruner is not None:
          extra_scalars.update({f"sparsity/{k}": v
                                for k, v in self.pruner.sparsity_report().items()})
          shown += f" | sparsity {100 * extra_scalars['sparsity/total']:.0f}%"
        per_problem, moe_sums = {}, [0.0, 0.0]
        rate, extra = progress.update(step, loss, shown)
        extra.update(extra_scalars)
        self._log_scalars(writer, step, loss, rate, **extra)
      if step % cfg.checkpoint_every_steps == 0 or step == cfg.train_steps:
        self.manager.save(checkpoint_number=step)
      if cfg.eval_every_steps and step % cfg.eval_every_steps == 0 \
          and step != cfg.train_steps and self.is_chief:
        self.evaluate(cfg.eval_role, step, eval_writer)
    self._summaries()
    return self._finish(step, loss, writer, eval_writer)

  def _summaries(self):
    """End-of-run summaries of the research instruments that were switched on."""
    out = {}
    if self.noise is not None and self.noise.b_simple is not None:
      out["critical_batch_tokens"] = self.noise.b_simple
      print(f"gradient noise scale: critical batch size ~ {self.noise.b_simple:.0f} target "
            f"tokens (B_simple = tr(Sigma)/|G|^2, McCandlish et al. 2018)", flush=True)
    if self.pruner is not None:
      report = self.pruner.sparsity_report()
      out["sparsity"] = report
      print("pruning: achieved sparsity " + ", ".join(
          f"{k} {100 * v:.0f}%" for k, v in sorted(report.items())), flush=True)
    if self.model_uses_moe():
      pf = moe.params_and_flops(self.model.cfg)
      out["moe"] = pf
      print(f"mixture of experts: backbone parameters {pf['moe']['params']:,.0f} (dense "
            f"{pf['dense']['params']:,.0f}, x{pf['ratio']['params']:.2f}), forward FLOPs "
            f"per token {pf['moe']['flops_per_token']:,.0f} (dense "
            f"{pf['dense']['flops_per_token']:,.0f}, x{pf['ratio']['flops_per_token']:.2f})",
            flush=True)
    if out and self.is_chief:
      fileio.atomic_write_json(os.path.join(self.output_dir, "instruments.json"), out)
    return out

  def _mixture_scalars(self, per_problem):
    """Per-problem training loss since the last log line and the fraction of all steps
    so far that each problem received (to check the mixing rates)."""
    counts = self.problem_steps.numpy()
    total = max(int(counts.sum()), 1)
    scalars, shown = {}, []
    for i, p in enumerate(self.problems):
      frac = counts[i] / total
      scalars[f"steps_fraction/{p.name}"] = frac
      if i in per_problem:
        scalars[f"loss/{p.name}"] = per_problem[i][0] / max(per_problem[i][1], 1.0)
      shown.append(f"{p.name} {100 * frac:.0f}%")
    return scalars, " | steps " + " ".join(shown)

  def _peak_gflops(self) -> float:
    if not self.cfg.report_mfu:
      return 0.0
    peak = throughput.peak_gflops()
    print(f"matmul peak of this machine: {peak:.0f} GFLOP/s (fp32; MFU is measured "
          "against it)", flush=True)
    return peak

  def _log_scalars(self, writer, step, loss, rate, **extra):
    lr = self.optimizer.learning_rate
    lr = float(lr.numpy() if hasattr(lr, "numpy") else lr)
    with writer.as_default():
      for name, value in dict(loss=loss, steps_per_sec=rate, learning_rate=lr,
                              **extra).items():
        tf.summary.scalar(name, value, step=step)

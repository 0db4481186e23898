"""The trainer: builds data, model, optimizer and checkpoint for one problem or a mixture,
then hands the loop to the controller.

Written against `tf.distribute.Strategy` (Orbit's shape). The pieces live in their own
modules: the per-replica step (train_step.py), the cadence of logs, saves and
evaluations (controller.py), the run directory (rundir.py), checkpoints (checkpoints.py),
signals (interrupts.py), the research instruments (hooks.py), and the runners of
synchronous (sync_training.py) and parameter-server training (async_training.py), which
train with the `controller.RunnerState` the trainer hands them and nothing else of it.
Configuration arrives as values (`TrainConfig`, `BackboneConfig`,
`adapters.ModalityConfigs`) read by the command line; construction is the other edge:
it reads gin for those its caller did not pass and for the optimizer, schedule,
pruning, precision, decoding and a T2T vocabulary, then hands values down.

Exact resume: the checkpoint holds the model, the optimizer, the step, every problem's
input iterator (position, shuffle buffer, per-example augmentation seeds; see data.py)
and the instruments' running averages; mixture draws are a function of (seed, step). A
run killed at any moment and re-run ends with an uninterrupted run's weights
(tests/test_resume.py).
"""

import os
import time
from typing import Optional

import tensorflow as tf

from onemodel import adapters
from onemodel import backbone as backbone_lib
from onemodel import checkpoints
from onemodel import controller as controller_lib
from onemodel import data as data_lib
from onemodel import decoding
from onemodel import distribute
from onemodel import evaluation
from onemodel import freezing
from onemodel import hooks as hooks_lib
from onemodel import interrupts as interrupts_lib
from onemodel import mixtures
from onemodel import model as model_lib
from onemodel import optim
from onemodel import plugins
from onemodel import precision
from onemodel import pruning
from onemodel import rundir as rundir_lib
from onemodel import selection
from onemodel import sync_training
from onemodel import throughput
from onemodel import train_step
from onemodel import vocab as vocab_lib
from onemodel import warm_start
from onemodel.errors import UserError
from onemodel.progress import Progress, scalar_logger
from onemodel.train_config import (TrainConfig, binding, check_against_problems,
                                   check_summed, setting, validate)

__all__ = ["Trainer", "TrainConfig", "Progress"]

STAT_KEYS = ("loss_sum", "tokens", "examples", "enc_tokens", "dec_tokens", "enc_attn",
             "dec_attn", "cross_attn")


class Trainer:
  """One problem or a mixture in `output_dir`. A mixture trains one model on all its
  problems: each step draws one problem (`mixtures.Sampler`) and runs that problem's
  step on the shared weights, or, with TrainConfig.mixture_update='summed', updates them
  with every problem's gradient at once. With `training=False` (evaluation, export, decoding) no
  optimizer and no training input pipeline are built."""

  def __init__(self, output_dir: str, data_dir: str, manual_dir: str,
               strategy: Optional[tf.distribute.Strategy] = None,
               cfg: Optional[TrainConfig] = None,
               backbone_cfg: Optional[backbone_lib.BackboneConfig] = None,
               training: bool = True,
               modality_cfg: Optional[adapters.ModalityConfigs] = None):
    self.cfg = validate(cfg or TrainConfig())
    if not self.cfg.problem:
      raise UserError("no problem to train: set the gin binding TrainConfig.problem "
                      "(e.g. --gin_param=\"TrainConfig.problem='mnist'\")")
    self.output_dir, self.data_dir, self.training = output_dir, data_dir, training
    self.problems, self.mixture = mixtures.resolve(self.cfg.problem)
    self.problem = self.problems[0]
    self.name = self.mixture.name if self.mixture else self.problem.name
    self.strategy = strategy or tf.distribute.OneDeviceStrategy(distribute.default_device())
    self.is_chief = distribute.is_chief()
    self.is_async = isinstance(self.strategy, tf.distribute.ParameterServerStrategy)
    self.jit_compile = distribute.step_jit_compile(self.strategy,
                                                   self.cfg.jit_compile and training)
    self.run_dir = rundir_lib.RunDir(output_dir, self.is_chief)
    check_against_problems(self.cfg, self.problems, self.strategy.num_replicas_in_sync)
    self.selector = None
    if training and self.cfg.select:
      if self.is_async or distribute.worker_count(self.strategy) > 1:
        raise UserError("gin binding TrainConfig.select: the best checkpoint is kept by "
                        "runs of one worker only (for now)")
      self.selector = selection.Selector(self.cfg.select, self.problems, self.cfg.eval_role)
    t2t_vocab = vocab_lib.text_vocab()  # gin's text_vocab.t2t_subwords_file
    for p in self.problems:
      if self.is_chief and training:
        data_lib.prepare(p, data_dir, manual_dir, vocab=False)  # get_vocabs below
      elif not self.is_chief:
        distribute.wait_for_chief(lambda p=p: data_lib.is_prepared(p, data_dir),
                                  f"problem {p.name} was not prepared in {data_dir}")
    self.vocabs, vocab_keys = data_lib.get_vocabs(
        self.problems, data_dir, 0 if self.is_chief else distribute.WAIT_FOR_CHIEF_S, t2t_vocab)
    self.vocab = self.vocabs[self.problem.name]
    # A training subset replaces the train split after the vocabularies were read.
    self.problems = [data_lib.with_train_split(
        p, setting(self.cfg, p.name, "train_split"), data_dir,
        binding(self.cfg, p.name, "train_split")) for p in self.problems]
    self.problem = self.problems[0]
    self.sampler = None
    if self.mixture:
      self.sampler = mixtures.Sampler(
          self.mixture, [p.name for p in self.problems],
          [data_lib.train_size(p, data_dir) for p in self.problems], self.cfg.seed)
    self.evaluators = {}  # (problem, DecodeConfig) -> Evaluator
    self.examples = {}  # problem -> the last evaluation's first examples
    precision.apply(precision.from_gin())  # 'float32' or 'mixed_bfloat16'
    tf.keras.utils.set_random_seed(self.cfg.seed)
    backbone_cfg = backbone_cfg or backbone_lib.BackboneConfig()
    # Trainer construction is an edge: gin's image/speech bindings are read here once,
    # then the model carries them to every input pipeline, evaluation and export.
    self.modality_cfg = modality_cfg or adapters.ModalityConfigs.from_gin()
    scoped = dict(self.modality_cfg.overrides)  # problems with their own bindings
    for p in self.problems:
      adapters.text.check_packing(self.modality_cfg.for_problem(p.name).text, self.cfg.pack,
                                  scope=p.name if p.name in scoped else "")
    self.decode_cfg = decoding.from_gin()  # how evaluation decodes (DecodeConfig.*)
    self.final_decode_cfg = decoding.from_gin("final")  # ... the final one (final/...)
    with self.strategy.scope():
      self.model = model_lib.build(self.problems, self.vocabs, vocab_keys, backbone_cfg,
                                   self.modality_cfg)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
      # Steps each problem received over the whole run (checkpointed with it).
      self.problem_steps = tf.Variable(tf.zeros([len(self.problems)], tf.int64),
                                       trainable=False, name="problem_steps")
      self._build_model_variables()
    if training:
      freezing.set_trainable(self.model, self.cfg.trainable)  # before the optimizer
    # Model weights by their unique paths, and only so: Keras 3 does not track layers
    # held in lists, and a variable saved under two names is listed under the first.
    weights = checkpoints.variables_by_path(
        self.model.variables, checkpoints.rng_state_paths(self.model), training)
    self.checkpoint = tf.train.Checkpoint(weights=weights, step=self.step,
                                          problem_steps=self.problem_steps)
    # The model alone (no optimizer, no input positions): what checkpoints/best/ holds.
    self.weights_checkpoint = tf.train.Checkpoint(weights=weights, step=self.step,
                                                  problem_steps=self.problem_steps)
    self.hooks, self.pruner, self.optimizer, self.optimizers = [], None, None, {}
    self.summed = False  # TrainConfig.mixture_update, for a mixture
    if training:
      self._build_training_state()
    ckpt_dir = self.run_dir.join("checkpoints")
    if training and not self.is_chief:
      # Multi-worker: every worker saves (the save is collective, and each worker's
      # input iterator is its own); only the chief writes into the run.
      ckpt_dir = self.run_dir.join(".worker_scratch", "%s_%d" % distribute.task())
    self.keeper = checkpoints.Keeper(self.checkpoint, ckpt_dir, self.cfg.keep_checkpoints,
                                     watched=self.model.trainable_variables,
                                     without_inputs=self._checkpoint_without_inputs,
                                     read_only=not training)
    warm_start.check_record(self.run_dir, self.model, self.vocabs)  # its own vocabularies

  # -- building ----------------------------------------------------------------------------

  def _build_model_variables(self):
    """Creates the model's variables from an all-zeros batch of each problem's feature
    shapes: no input pipeline is read (evaluation builds no training pipeline)."""
    for p in self.problems:
      ds = data_lib.dataset(p, "train", self.data_dir, 1, training=False,
                            vocab=self.vocabs[p.name], modality_cfg=self.modality_cfg)
      batch = {k: tf.zeros([1, *s.shape[1:]], s.dtype) for k, s in ds.element_spec.items()}
      self.model(batch, problem=p.name, training=False)

  def _checkpoint_without_inputs(self) -> tf.train.Checkpoint:
    parts = {k: getattr(self.checkpoint, k) for k in (
        "weights", "step", "problem_steps", "optimizer", "optimizers", "noise_scale",
        "pruner")
        if hasattr(self.checkpoint, k)}
    return tf.train.Checkpoint(**parts)

  def _build_training_state(self):
    cfg, k = self.cfg, self.cfg.grad_accum_steps
    # One optimizer, or one per problem of a mixture (TrainConfig.optimizer_state).
    per_problem = bool(self.mixture) and cfg.optimizer_state == "per_problem"
    self.summed = bool(self.mixture) and cfg.mixture_update == "summed"
    if self.summed:
      check_summed(cfg, self.is_async, self.model.cfg.ffn == "moe")
    if per_problem and self.is_async:
      raise UserError("gin binding TrainConfig.optimizer_state='per_problem': not "
                      "available with parameter-server training (use 'shared')")
    with self.strategy.scope():
      self.optimizers, self.clipnorm = optim.build_optimizers(
          [p.name for p in (self.problems if per_problem else self.problems[:1])],
          self.model.trainable_variables, cfg.train_steps, *optim.from_gin(),
          effective_batch=cfg.batch_size * k, step=self.step if per_problem else None)
      # The first (the only one unless per problem): its learning rate is the run's.
      self.optimizer = next(iter(self.optimizers.values()))
      self.pruner = pruning.maybe_pruner(self.model, pruning.from_gin())
      # Parameter-server training: how many updates the variables have seen, to measure
      # gradient staleness (updates applied between reading and updating the weights).
      self.version = tf.Variable(0, dtype=tf.int64, trainable=False, name="version")
    if per_problem:
      self.checkpoint.optimizers = self.optimizers
    else:
      self.checkpoint.optimizer = self.optimizer
    self.stat_keys = STAT_KEYS
    if cfg.noise_scale:
      noise = hooks_lib.NoiseScaleHook()
      self.checkpoint.noise_scale = noise
      self.hooks.append(noise)
      self.stat_keys += noise.KEYS
    if self.model.cfg.ffn == "moe":
      self.hooks.append(hooks_lib.MoEHook(self.model.cfg))
      self.stat_keys += hooks_lib.MoEHook.KEYS
    if self.pruner is not None:
      self.checkpoint.pruner = self.pruner
      self.hooks.append(hooks_lib.PruningHook(self.pruner))
    if self.mixture:
      self.hooks.append(hooks_lib.MixtureHook([p.name for p in self.problems],
                                              self.problem_steps))

  def step_fn(self, index: int):
    p = self.problems[index]
    return train_step.build_step_fn(
        self.model, self.optimizers.get(p.name, self.optimizer), p.name,
        grad_accum_steps=self.cfg.grad_accum_steps,
        label_smoothing=setting(self.cfg, p.name, "label_smoothing"), clipnorm=self.clipnorm,
        use_moe="moe_dropped" in self.stat_keys, measure_noise=self.cfg.noise_scale,
        jit_compile=self.jit_compile)

  def summed_step_fn(self, indices):
    names = [self.problems[i].name for i in indices]
    return train_step.build_summed_step_fn(
        self.model, self.optimizer, names,
        [setting(self.cfg, n, "label_smoothing") for n in names], clipnorm=self.clipnorm,
        jit_compile=self.jit_compile)

  def dataset(self, ctx: tf.distribute.InputContext, problem, shard=None):
    """One input pipeline's training batches of `problem` (per replica)."""
    per_replica = ctx.get_per_replica_batch_size(setting(self.cfg, problem.name, "batch_size"))
    batch_tokens = setting(self.cfg, problem.name, "batch_tokens")
    ds = data_lib.dataset(problem, "train", self.data_dir, per_replica, training=True,
                          vocab=self.vocabs[problem.name], seed=self.cfg.seed,
                          batch_tokens=batch_tokens // ctx.num_replicas_in_sync,
                          bucket_boundaries=self.cfg.bucket_boundaries,
                          deterministic=self.cfg.deterministic, pack=self.cfg.pack,
                          cache=self.cfg.cache, shuffle_buffer=self.cfg.shuffle_buffer,
                          shard=shard or (ctx.num_input_pipelines, ctx.input_pipeline_id),
                          shard_batches=self.cfg.input_sharding == "batches",
                          modality_cfg=self.modality_cfg)
    if self.cfg.grad_accum_steps > 1:  # [k, b, ...]: the micro-batches of one update
      ds = ds.batch(self.cfg.grad_accum_steps, drop_remainder=True)
    return ds

  def iterators(self):
    """{problem: distributed iterator of its training batches} (benchmarks, tests)."""
    return {p.name: iter(self.strategy.distribute_datasets_from_function(
        lambda ctx, p=p: self.dataset(ctx, p))) for p in self.problems}

  def runner_state(self) -> controller_lib.RunnerState:
    """What a runner trains with (the runners read nothing else of the trainer)."""
    return controller_lib.RunnerState(
        strategy=self.strategy, problems=tuple(self.problems), sampler=self.sampler,
        steps_per_loop=self.cfg.steps_per_loop, train_steps=self.cfg.train_steps,
        step_fn=self.step_fn, dataset=self.dataset, stat_keys=tuple(self.stat_keys),
        step=self.step, problem_steps=self.problem_steps,
        iterations=self.optimizer.iterations, version=self.version, pruner=self.pruner,
        summed_step_fn=self.summed_step_fn if self.summed else None)

  def train_loop(self, index: int = 0):
    """The `tf.function` that trains problem `index` for n steps (benchmarks, tests)."""
    return sync_training.make_train_loop(self.runner_state(), index)

  @property
  def manager(self) -> tf.train.CheckpointManager:
    return self.keeper.manager

  def model_uses_moe(self) -> bool:
    return self.model.cfg.ffn == "moe"

  # -- restoring ---------------------------------------------------------------------------

  def restore(self, checkpoint: str = "") -> str:
    """Evaluation: restores `checkpoint` (default: the run's latest; 'best': the one
    TrainConfig.select kept) -> its path."""
    if checkpoint == "best":
      checkpoint = selection.best_checkpoint(self.output_dir)
    path = self.keeper.restore(checkpoint, complete=not checkpoint and self.training)
    if not path:
      raise UserError(f"no checkpoint in {self.run_dir.join('checkpoints')}")
    return path

  # -- evaluation --------------------------------------------------------------------------

  def evaluate(self, role: str, step: int, writer=None, tag: str = "", decode_cfg=None):
    """Each problem's metrics on its `role` split -> {metric: value} for one problem,
    {problem: {metric: value}} for a mixture. Also printed, written to TensorBoard and
    to OUTPUT_DIR/metrics_ROLE[_TAG][_PROBLEM]_stepN.json. `decode_cfg`: None for
    `self.decode_cfg`."""
    out, started = {}, time.time()
    decode_cfg = decode_cfg or self.decode_cfg
    for p in self.problems:
      key = (p.name, decode_cfg)
      if key not in self.evaluators:  # compiled once, reused at every evaluation
        self.evaluators[key] = evaluation.Evaluator(
            self.model, p, self.vocabs[p.name], self.data_dir, self.cfg.eval_batch_size,
            decode_cfg, self.strategy)
      results = self.evaluators[key].evaluate(role, self.cfg.eval_max_examples)
      self.examples[p.name] = self.evaluators[key].examples
      shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(results.items()))
      if self.is_chief:
        print(f"eval {p.name} {role} @ step {step}: {shown}", flush=True)
      if writer is not None:
        with writer.as_default():
          for k, v in results.items():
            tf.summary.scalar(f"{p.name}/{role}/{k}", v, step=step)
      name = f"metrics_{role}{'_' + tag if tag else ''}" + \
          (f"_{p.name}" if self.mixture else "") + f"_step{step}.json"
      self.run_dir.write_json(name, {
          "problem": p.name, "mixture": self.name if self.mixture else None, "split": role,
          "step": step, "tag": tag, "started": started, "time": time.time(),
          "metrics": results})
      out[p.name] = results
    return out if self.mixture else out[self.problem.name]

  # -- training ----------------------------------------------------------------------------

  def _writer(self, name):
    if not self.is_chief:
      return tf.summary.create_noop_writer()
    return tf.summary.create_file_writer(self.run_dir.join(name))

  def _runner(self):
    """The runner for this strategy; what it checkpoints (input positions) joins the
    checkpoint here, before anything is restored."""
    if self.is_async:
      from onemodel import async_training
      runner = async_training.AsyncRunner(self.runner_state())
    else:
      runner = sync_training.SyncRunner(self.runner_state())
    for name, trackable in runner.checkpointed.items():
      setattr(self.checkpoint, name, trackable)
    return runner

  def train(self, config_text: str = "", operative_config=lambda: ""):
    """Trains to cfg.train_steps, resuming the run's latest checkpoint; evaluates at the
    end. `config_text` becomes OUTPUT_DIR/config.gin once the restore has succeeded."""
    self.run_dir.check_writable(self.keeper.directory, self.keeper.estimated_bytes())
    self.run_dir.lock()
    try:
      return self._train(config_text, operative_config)
    finally:
      self.run_dir.unlock()

  def _restore_for_training(self, diff):
    if distribute.worker_count(self.strategy) < 2:
      return self.keeper.restore(complete=True, config_diff=diff)
    step = distribute.newest_common_step(self.strategy, self.keeper.steps(),
                                         self.cfg.keep_checkpoints)
    self.keeper.set_aside_after(step)
    return self.keeper.restore(self.keeper.path_at(step), config_diff=diff) if step else None

  def _train(self, config_text, operative_config):
    cfg, run = self.cfg, self.run_dir
    for name in run.clean_leftovers():
      print(f"onemodel: removed the leftover {name} of an interrupted write", flush=True)
    runner = self._runner()
    diff = rundir_lib.config_differences(run.read_config(), config_text)
    restored = self._restore_for_training(diff)
    for hook in self.hooks:
      if isinstance(hook, hooks_lib.NoiseScaleHook):
        hook.load()
    start = int(self.step.numpy())
    best = None
    if self.selector is not None:
      best = selection.Best(self.selector, self.output_dir, self.weights_checkpoint,
                            cfg.patience)
      best.resume(start)
    if not restored and cfg.init_from:  # a re-run resumes from its own checkpoint instead
      record = warm_start.load(self.model, self.vocabs, cfg.init_from, cfg.init_scope,
                               [p.name for p in self.problems], verbose=self.is_chief)
      run.write_json(warm_start.RECORD, record)
    if restored:
      print(f"resumed from {restored} at step {start}", flush=True)
      if not runner.exact:
        print(f"onemodel: note: under {type(self.strategy).__name__} the input position "
              "is not part of the checkpoint; the resumed run reads a fresh shuffle of "
              "the training data", flush=True)
    if config_text:
      run.write_text("config.gin", config_text)
    if self.is_chief:  # later commands on the run (eval, export, decode) find its plugins
      plugins.write_record(self.output_dir)
      warm_start.write_model_record(run, self.model, self.vocabs)  # for warm starts from it
      print(freezing.parameter_line(self.model, cfg.trainable), flush=True)
      for p in self.problems:
        if setting(cfg, p.name, "train_split"):
          print(f"{p.name}: training on {p.splits['train']!r}, "
                f"{data_lib.train_size(p, self.data_dir):,} examples", flush=True)
    writer, eval_writer = self._writer("train"), self._writer("eval")
    progress = Progress(cfg.train_steps, start, throughput.report_peak(cfg.report_mfu),
                        self.model.cfg, [self.model.target_embedding(p.name).vocab_size
                                         for p in self.problems])
    hooks = list(self.hooks) + list(runner.hooks)
    interrupts = interrupts_lib.Interrupts(self.keeper.save, self.strategy)

    def evaluate(step) -> bool:  # every worker, when evaluation is distributed
      if self.is_chief or evaluation.distributed(self.strategy):
        results = self.evaluate(cfg.eval_role, step, eval_writer)
        return best.update(step, results) if best else False  # True: stop early
      return False

    stopped = best is not None and best.stopped_at == start  # a re-run of a stopped run
    ctl = controller_lib.Controller(cfg, runner, hooks, progress, self.keeper.save,
                                    evaluate, scalar_logger(writer, self.optimizer),
                                    interrupts, [p.name for p in self.problems])
    try:
      if stopped:
        print(f"onemodel: this run stopped early at step {start} (TrainConfig.patience); "
              "nothing left to train", flush=True)
      elif start < cfg.train_steps:
        text = operative_config()
        if text:
          run.write_text("operative_config.gin", text)
          with writer.as_default():
            tf.summary.text("operative_config", text, step=start)
      step, loss = (start, float("nan")) if stopped else ctl.run(start)
    finally:
      getattr(runner, "close", lambda: None)()
      interrupts.close()
      writer.flush()
    self.keeper.save(step)
    summary = {}
    for hook in hooks:
      summary.update(hook.summary())
    if summary:
      run.write_json("instruments.json", summary)
    results, final_step, tag = None, step, ""
    if best and best.path() and cfg.final_eval_role:
      # Model selection: the final evaluation reads the chosen weights, not the last.
      self.weights_checkpoint.restore(best.path()).expect_partial()
      final_step, tag = best.state["step"], "best"
      print(f"final evaluation of the best checkpoint, step {final_step}", flush=True)
    if cfg.final_eval_role and (self.is_chief or evaluation.distributed(self.strategy)):
      results = self.evaluate(cfg.final_eval_role, final_step, eval_writer, tag=tag,
                              decode_cfg=self.final_decode_cfg)
    eval_writer.flush()
    distribute.final_barrier(self.strategy)
    return {"step": step, "loss": loss, "eval": results if self.is_chief else None}

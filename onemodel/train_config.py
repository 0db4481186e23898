"""TrainConfig: what to train and for how long, checked when it is read.

A value outside its range must fail before anything runs, with one line naming the gin
binding and what is allowed: a zero `steps_per_loop` once looped forever, zero intervals
divided by zero mid-run, and `train_steps <= 0` evaluated an untrained model and exited 0.
"""

import dataclasses
import numbers
from typing import Any

import gin

from onemodel.errors import UserError


@gin.configurable
@dataclasses.dataclass
class TrainConfig:
  """What to train and for how long (see gin/experiments/*.gin)."""
  problem: Any = ""                 # a problem or mixture name, or a gin @Mixture()
  train_steps: int = 1000
  batch_size: int = 32
  # Token-budget batching for text problems (0: off): buckets of about this many tokens
  # per replica, padded to the smallest boundary that fits (see batching.bucket_by_length).
  batch_tokens: int = 0
  bucket_boundaries: tuple = (8, 12, 16, 20, 24, 32, 48)
  # Sequence packing for text problems: several examples per row, attention kept within
  # each (segment ids/positions); rows have the problem's fixed lengths.
  pack: bool = False
  # Per-problem overrides inside a mixture, e.g. {'fsdd': {'batch_size': 32},
  # 'multi30k_en_de': {'batch_tokens': 2048, 'label_smoothing': 0.1}}.
  per_problem: dict = dataclasses.field(default_factory=dict)
  # Train on part of the training split: a TFDS split spec such as 'train[:10%]' or
  # 'train[:240]' (tensorflow.org/datasets/splits); '' = the problem's whole split. The
  # vocabulary is still the whole split's, so subset runs share it with full runs.
  train_split: str = ""
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
  shuffle_buffer: int = 4096        # examples; the buffer is part of every checkpoint
  # Several workers (multi-worker, parameter servers): 'source' = each reads only its own
  # 1/N of the records and shuffles them alone; 'batches' = each reads everything and
  # keeps its own batches, so N workers train on exactly one device's N-times-larger
  # batch (N full reads; with `batch_size` batches only). See data.dataset.
  input_sharding: str = "source"
  # Warm start (warm_start.py): a run directory, checkpoints directory or checkpoint
  # prefix whose weights a new run starts from; `init_scope` says which of them.
  init_from: str = ""
  init_scope: str = "all"
  # Which weights train: 'adapters' freezes the shared backbone; 'adapters_and_norms'
  # also trains the backbone's layer norms (a small fine-tune of a trained model).
  trainable: str = "all"
  # Model selection (selection.py): 'PROBLEM/METRIC', 'METRIC' (one problem) or
  # 'mean_rank' (a joint run) on the eval_role split at every eval_every_steps; the best
  # weights go to checkpoints/best/. `patience`: stop after this many evaluations
  # without a better value (0: never).
  select: str = ""
  patience: int = 0
  # Adam's moments in a mixture: 'shared' (one optimizer, as Tensor2Tensor's multi-problem
  # training) or 'per_problem' (each problem's steps update the shared weights with
  # moments of its own gradients only; all follow the run's one schedule). Shared second
  # moments are dominated by the problem with the noisiest gradients, which shrinks the
  # others' steps on the shared weights; in multimodel.gin that cost little (README).
  optimizer_state: str = "shared"
  # How a mixture's steps use its problems: 'sampled' (each update trains one problem,
  # drawn by the mixture's rates, as Tensor2Tensor's multi-problem training) or 'summed'
  # (each update sums every problem's gradient, weighted by its rate; examples of all
  # problems in every step, as T5's mixtures mix them into every batch). Same expected
  # gradient; 'summed' gives every problem every update.
  mixture_update: str = "sampled"


# binding -> (lowest allowed value, what the range is called)
_AT_LEAST = {
    "train_steps": (1, ">= 1"), "batch_size": (1, ">= 1"), "batch_tokens": (0, ">= 0"),
    "grad_accum_steps": (1, ">= 1"), "eval_batch_size": (1, ">= 1"),
    "steps_per_loop": (1, ">= 1"), "log_every_steps": (1, ">= 1"),
    "checkpoint_every_steps": (1, ">= 1"), "keep_checkpoints": (1, ">= 1"),
    "eval_every_steps": (0, ">= 0 (0: only at the end)"),
    "eval_max_examples": (0, ">= 0 (0: the whole split)"), "seed": (0, ">= 0"),
    "shuffle_buffer": (1, ">= 1"), "patience": (0, ">= 0 (0: never stop early)"),
}
_BOOLS = ("pack", "noise_scale", "jit_compile", "deterministic", "cache", "report_mfu")
_ROLES = ("eval_role", "final_eval_role")
INIT_SCOPES = ("all", "backbone", "backbone_and_adapters")
OPTIMIZER_STATES = ("shared", "per_problem")
MIXTURE_UPDATES = ("sampled", "summed")
TRAINABLE = ("all", "adapters", "adapters_and_norms")
PER_PROBLEM_KEYS = ("batch_size", "batch_tokens", "label_smoothing", "train_split")


def _fail(name: str, value, allowed: str):
  raise UserError(f"gin binding TrainConfig.{name}={value!r}: must be {allowed}")


def _check_int(name, value, low, allowed):
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    _fail(name, value, "an integer " + allowed)
  if value < low:
    _fail(name, value, allowed)


def validate(cfg: TrainConfig) -> TrainConfig:
  """Every value in its range, or one UserError naming the binding and the range."""
  for name, (low, allowed) in _AT_LEAST.items():
    _check_int(name, getattr(cfg, name), low, allowed)
  for name in _BOOLS:
    if not isinstance(getattr(cfg, name), bool):
      _fail(name, getattr(cfg, name), "True or False")
  ls = cfg.label_smoothing
  if isinstance(ls, bool) or not isinstance(ls, numbers.Real) or not 0.0 <= ls < 1.0:
    _fail("label_smoothing", ls, "a number in [0, 1)")
  if cfg.input_sharding not in ("source", "batches"):
    _fail("input_sharding", cfg.input_sharding, "'source' or 'batches'")
  if not isinstance(cfg.select, str):
    _fail("select", cfg.select, "'PROBLEM/METRIC', 'METRIC' or 'mean_rank'")
  if (cfg.select or cfg.patience) and not cfg.eval_every_steps:
    raise UserError(f"gin binding TrainConfig.{'select' if cfg.select else 'patience'} "
                    "needs periodic evaluations: set TrainConfig.eval_every_steps")
  if cfg.patience and not cfg.select:
    raise UserError("gin binding TrainConfig.patience counts evaluations without a better "
                    "TrainConfig.select: set that too")
  if not isinstance(cfg.train_split, str):
    _fail("train_split", cfg.train_split, "a TFDS split such as 'train[:10%]' ('' : all)")
  if not isinstance(cfg.init_from, str):
    _fail("init_from", cfg.init_from, "a run directory or checkpoint path ('' : none)")
  for name, allowed in (("init_scope", INIT_SCOPES), ("trainable", TRAINABLE),
                        ("optimizer_state", OPTIMIZER_STATES),
                        ("mixture_update", MIXTURE_UPDATES)):
    if getattr(cfg, name) not in allowed:
      _fail(name, getattr(cfg, name), "one of " + ", ".join(repr(a) for a in allowed))
  for name in _ROLES:
    if not isinstance(getattr(cfg, name), str):
      _fail(name, getattr(cfg, name), "a split role such as 'eval' or 'test'")
  if not isinstance(cfg.per_problem, dict):
    _fail("per_problem", cfg.per_problem, "a dict {problem: {setting: value}}")
  for problem, over in cfg.per_problem.items():
    if not isinstance(over, dict):
      _fail(f"per_problem[{problem!r}]", over, "a dict {setting: value}")
    bad = sorted(set(over) - set(PER_PROBLEM_KEYS))
    if bad:
      raise UserError(f"gin binding TrainConfig.per_problem[{problem!r}]: unknown keys "
                      f"{', '.join(bad)} (allowed: {', '.join(PER_PROBLEM_KEYS)})")
    for key, value in over.items():
      if key == "label_smoothing":
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not 0.0 <= value < 1.0:
          _fail(f"per_problem[{problem!r}][{key!r}]", value, "a number in [0, 1)")
      elif key == "train_split":
        if not isinstance(value, str):
          _fail(f"per_problem[{problem!r}][{key!r}]", value, "a TFDS split such as "
                "'train[:10%]'")
      else:
        low, allowed = _AT_LEAST[key]
        _check_int(f"per_problem[{problem!r}][{key!r}]", value, low, allowed)
  if not isinstance(cfg.bucket_boundaries, (tuple, list)) or not cfg.bucket_boundaries or \
      any(isinstance(b, bool) or not isinstance(b, int) or b < 1
          for b in cfg.bucket_boundaries):
    _fail("bucket_boundaries", cfg.bucket_boundaries, "a non-empty list of lengths >= 1")
  # Combinations, with each problem's own batch_tokens too (a per-problem override once
  # slipped past these and failed mid-run with a traceback).
  token_budgets = [("TrainConfig.batch_tokens", cfg.batch_tokens)] + [
      (f"TrainConfig.per_problem[{name!r}]['batch_tokens']", over["batch_tokens"])
      for name, over in cfg.per_problem.items() if "batch_tokens" in over]
  for name, tokens in token_budgets:
    if cfg.grad_accum_steps > 1 and tokens:
      raise UserError(f"gin bindings TrainConfig.grad_accum_steps > 1 and {name} "
                      "exclude each other (accumulated micro-batches need one shape); "
                      "use batch_size or pack=True")
    if cfg.pack and tokens:
      raise UserError(f"gin bindings TrainConfig.pack and {name} exclude each other")
  if cfg.noise_scale and cfg.grad_accum_steps < 2:
    raise UserError("gin binding TrainConfig.noise_scale=True needs two batch sizes: "
                    "set TrainConfig.grad_accum_steps >= 2")
  return cfg


def setting(c: TrainConfig, problem_name: str, key: str):
  """TrainConfig's `key` for one problem: its per_problem override, else the default."""
  return c.per_problem.get(problem_name, {}).get(key, getattr(c, key))


def binding(c: TrainConfig, problem_name: str, key: str) -> str:
  """The gin binding that `setting(c, problem_name, key)` came from, for messages."""
  if key in c.per_problem.get(problem_name, {}):
    return f"TrainConfig.per_problem[{problem_name!r}][{key!r}]"
  return f"TrainConfig.{key}"


def check_summed(c: TrainConfig, is_async: bool, use_moe: bool):
  """What 'summed' mixture updates do not combine with (yet): one line naming it."""
  for what, present in (
      ("parameter-server training", is_async),
      ("TrainConfig.optimizer_state='per_problem'", c.optimizer_state == "per_problem"),
      ("TrainConfig.grad_accum_steps > 1", c.grad_accum_steps > 1),
      ("TrainConfig.noise_scale=True", c.noise_scale),
      ("a mixture-of-experts backbone", use_moe)):
    if present:
      raise UserError("gin binding TrainConfig.mixture_update='summed': not available "
                      f"with {what} (use 'sampled')")


def check_against_problems(c: TrainConfig, problems, num_replicas: int = 1):
  """The settings that depend on the problems and the replicas, checked before anything
  runs (a wrong role once failed only after training, at the evaluation)."""
  names = [p.name for p in problems]
  roles = [("final_eval_role", c.final_eval_role)]
  if c.eval_every_steps:
    roles.append(("eval_role", c.eval_role))
  for name, role in roles:
    for p in problems:
      if role and role not in p.splits:
        raise UserError(f"gin binding TrainConfig.{name}={role!r}: problem {p.name} "
                        f"has no such split (its roles: {', '.join(sorted(p.splits))})")
  for p in problems:
    batch = setting(c, p.name, "batch_size")
    if batch % num_replicas:
      raise UserError(f"gin binding {binding(c, p.name, 'batch_size')}={batch}: the "
                      f"global batch must divide evenly over the {num_replicas} replicas")
  for name in c.per_problem:
    if name not in names:
      raise UserError(f"gin binding TrainConfig.per_problem names {name!r}, which is not "
                      f"trained here ({', '.join(names)})")
  for p in problems:
    if c.cache and p.augment is not None:
      raise UserError(f"gin binding TrainConfig.cache=True: problem {p.name} augments "
                      "raw inputs every epoch (Problem.augment), so its features "
                      "cannot be cached; turn the cache off")
    bad = [r for r, spec in p.features() if spec.modality != "text"]
    if c.pack and bad:
      raise UserError(f"gin binding TrainConfig.pack=True: problem {p.name} has "
                      f"non-text {', '.join(bad)}; packing is for text problems")

"""A onemodel run directory as a planner workload: what that run measured here.

Read from the run (onemodel-train's output dir):
  operative_config.gin   TrainConfig.train_steps / log_every_steps / problem, the model
  train/ TensorBoard     tokens_per_sec, steps_per_sec, model_gflops_per_sec, mfu and, when
                         TrainConfig.noise_scale was on, noise_scale_tokens (B_simple)
  the latest checkpoint  the parameter count (the model's variables)
  instruments.json       critical_batch_tokens (end-of-run B_simple), when present

Examples are target tokens (the unit of the trainer's loss and of B_simple). FLOPs per
token are the trainer's own count (model_gflops_per_sec / tokens_per_sec, from
onemodel.throughput). Steps to target: the run's train_steps at its measured batch, and,
with a noise scale, S(B) = S_min (1 + B_noise / B) through that point (McCandlish et al.
2018, eq. 2.11). The first logging interval (tf.function tracing) is skipped.
"""

import json
import os
import re
import statistics

from onemodel.errors import UserError
from onemodel.plan import steps as steps_lib
from onemodel.plan import stragglers
from onemodel.plan.workloads import Measured, Workload

NEEDED = ("tokens_per_sec", "steps_per_sec", "model_gflops_per_sec")


def is_run_dir(path: str) -> bool:
  return os.path.isdir(path)


def _gin_value(text: str, name: str):
  m = re.search(rf"^{re.escape(name)}\s*=\s*(.+)$", text, re.M)
  return m.group(1).strip().strip("'\"") if m else None


def read_scalars(logdir: str) -> dict:
  """{tag: [(step, value), ...]} from the TensorBoard event files in `logdir`."""
  import tensorflow as tf
  out = {}
  files = sorted(f for f in os.listdir(logdir) if "tfevents" in f) \
      if os.path.isdir(logdir) else []
  for f in files:
    # (tf.compat.v1.train.summary_iterator is deprecated in favour of exactly this.)
    for record in tf.data.TFRecordDataset(os.path.join(logdir, f)):
      ev = tf.compat.v1.Event.FromString(record.numpy())
      for v in ev.summary.value:
        if v.HasField("tensor"):
          arr = tf.make_ndarray(v.tensor)
          if arr.dtype.kind not in "fiu" or arr.size != 1:
            continue  # text summaries (the operative config)
          val = float(arr)
        elif v.HasField("simple_value"):
          val = float(v.simple_value)
        else:
          continue
        out.setdefault(v.tag, []).append((ev.step, val))
  return out


def count_params(run: str) -> float:
  import tensorflow as tf
  ckpt = tf.train.latest_checkpoint(os.path.join(run, "checkpoints")) or \
      tf.train.latest_checkpoint(run)
  if not ckpt:
    raise UserError(f"run directory {run} has no checkpoint: the parameter count "
                    "(gradient bytes) is unknown; let the run save one")
  total = 0
  # The trainer tracks the model's weights under weights/ (and model/); the
  # optimizer's copies (optimizer/) and RNG states (seed_generator) are not parameters.
  for name, shape in tf.train.list_variables(ckpt):
    if name.startswith(("weights/", "model/")) and "seed_generator" not in name and shape:
      n = 1
      for d in shape:
        n *= d
      total += n
  return float(total)


def load(run: str) -> Workload:
  config = os.path.join(run, "operative_config.gin")
  if not os.path.isfile(config):
    raise UserError(f"{run} is not a training run directory: no operative_config.gin "
                    "(and not a known workload name)")
  text = open(config).read()
  train_steps = int(_gin_value(text, "TrainConfig.train_steps") or 0)
  log_every = int(_gin_value(text, "TrainConfig.log_every_steps") or 1)
  problem = _gin_value(text, "TrainConfig.problem") or "run"
  if problem.startswith("@"):  # a mixture defined in gin: `@joint/Mixture()` -> its name
    scope = problem[1:].split("Mixture", 1)[0]
    problem = f"mixture {_gin_value(text, scope + 'Mixture.name') or scope.strip('/')}"
  logdir = os.path.join(run, "train")
  if not os.path.isdir(logdir) or not any("tfevents" in f for f in os.listdir(logdir)):
    raise UserError(f"run directory {run} lacks the measurement tokens_per_sec (no "
                    "TensorBoard events in train/): train it with onemodel-train first")
  scalars = read_scalars(logdir)
  missing = [k for k in NEEDED if len(scalars.get(k, [])) < 2]
  if missing:
    raise UserError(f"run directory {run} lacks the measurement {missing[0]} (needs 2+ "
                    "logged intervals in train/): re-run onemodel-train with "
                    "TrainConfig.report_mfu=True and train_steps >= 2 x log_every_steps")
  tok = [v for _, v in scalars["tokens_per_sec"]][1:]
  sps = [v for _, v in scalars["steps_per_sec"]][1:]
  gfl = [v for _, v in scalars["model_gflops_per_sec"]][1:]
  tokens_per_s = statistics.median(tok)
  steps_per_s = statistics.median(sps)
  batch = tokens_per_s / steps_per_s            # target tokens per optimizer step
  flops_per_token = statistics.median(g * 1e9 / t for g, t in zip(gfl, tok))
  # The trainer logs interval means, not single steps. On this shared machine the spread
  # is slow contention, correlated across steps, so the interval spread is used as it
  # is (k = 1), not scaled up by sqrt(steps per interval) as independent noise would be.
  try:
    cv = stragglers.per_step_cv([1.0 / s for s in sps], 1)
  except ValueError:
    cv = None
  mfu = statistics.median(v for _, v in scalars["mfu"][1:]) if "mfu" in scalars else None
  peak = (statistics.median(gfl) * 1e9 / mfu) if mfu else None
  b_noise, note = None, ""
  inst = os.path.join(run, "instruments.json")
  if os.path.isfile(inst):
    b_noise = json.load(open(inst)).get("critical_batch_tokens")
  if b_noise is None and scalars.get("noise_scale_tokens"):
    b_noise = scalars["noise_scale_tokens"][-1][1]
  if b_noise is not None and b_noise > 0:
    model = steps_lib.StepModel(
        0.0, s_min=steps_lib.s_min_from_reference(train_steps, batch, b_noise),
        b_noise=b_noise, note=f"through the run's {train_steps} steps at {batch:,.0f} "
        f"tokens; B_noise = the run's measured B_simple")
  else:
    model = steps_lib.StepModel(0.0, s_min=float(train_steps), b_noise=0.0,
                                note=f"no noise scale measured (TrainConfig.noise_scale="
                                f"False): the run's {train_steps} steps at any batch")
  stale = scalars.get("staleness")
  measured = Measured(
      examples_per_sec=tokens_per_s, batch=batch, step_cv=cv, mfu=mfu, peak_flops=peak,
      staleness=statistics.mean(v for _, v in stale) if stale else None,
      source=f"median of {len(tok)} logged intervals of {run}")
  ex = [v for _, v in scalars.get("examples_per_sec", [])][1:]
  seq = statistics.median(t / e for t, e in zip(tok, ex) if e > 0) if ex else 1.0
  layers = sum(int(_gin_value(text, f"BackboneConfig.num_{k}_layers") or 0)
               for k in ("encoder", "decoder"))
  return Workload(
      name=f"{problem} ({os.path.basename(os.path.normpath(run))})", unit="token",
      model_dim=int(_gin_value(text, "BackboneConfig.model_dim") or 0), layers=layers,
      tokens_per_example=seq,
      flops_per_example=flops_per_token, params=count_params(run), precision="bf16",
      grad_precision="fp32", family="transformer", step_model=model,
      target=f"the run's loss after {train_steps} steps",
      source=f"run directory {run}", measured=measured)

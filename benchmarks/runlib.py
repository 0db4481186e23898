"""Shared pieces of the benchmark scripts: run the trainer as a subprocess (resumable),
read a run's metrics and its TensorBoard scalars, describe the machine, and the
statistics over seeds (mean ± sd, a paired t-interval)."""

import glob
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")


def base_recipe(problem):
  """The problem's base-size experiment file: gin/experiments/PROBLEM_base.gin where the
  problem's own PROBLEM.gin is a minutes recipe (mnist, fsdd, tinyshakespeare,
  multi30k_en_de, sst2), else PROBLEM.gin. The base-size benchmarks (quality bars, joint vs single, large batch)
  read these, so their figures stay comparable with the ones measured before."""
  base = os.path.join(ROOT, "gin", "experiments", f"{problem}_base.gin")
  return base if os.path.exists(base) else \
      os.path.join(ROOT, "gin", "experiments", f"{problem}.gin")


def train_command(gin_files, params, output_dir, manual_dir, data_dir):
  """The trainer command line. `python -m onemodel.cli.train` run from ROOT (with ROOT
  first on PYTHONPATH, see `train`) trains with this checkout's code, not with whichever
  checkout the `onemodel-train` entry point of the environment was installed from."""
  return [sys.executable, "-m", "onemodel.cli.train",
          *[f"--gin_file={os.path.abspath(f)}" for f in gin_files],
          f"--output_dir={os.path.abspath(output_dir)}",
          f"--manual_dir={os.path.abspath(manual_dir)}",
          f"--data_dir={os.path.abspath(data_dir)}", *[f"--gin_param={p}" for p in params]]


def train(name, gin_files, params, output_root, manual_dir, data_dir):
  """Trains into OUTPUT_ROOT/NAME (log OUTPUT_ROOT/NAME.log) -> run record.

  Re-running the same call resumes the run from its last checkpoint (the trainer does
  that for an existing output dir); the log is appended to, and the record's wall time
  adds up every attempt."""
  out = os.path.join(output_root, name)
  cmd = train_command(gin_files, params, out, manual_dir, data_dir)
  os.makedirs(output_root, exist_ok=True)
  log = os.path.join(output_root, f"{name}.log")
  before = reused(name, output_root)["wall_s"] if os.path.isdir(out) else 0.0
  before = 0.0 if before != before else before  # nan: no record of earlier attempts
  env = {**os.environ, "PYTHONPATH": os.pathsep.join(
      [ROOT] + list(filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))))}
  record = {"name": name, "dir": out, "rc": None, "wall_s": before,
            "command": shlex.join(cmd), "gin_files": list(gin_files),
            "params": list(params), "commit": git_rev(ROOT)}
  _write_record(output_root, record)  # before training: a killed attempt still has one
  t0 = time.time()
  with open(log, "a") as f:
    f.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(cmd)}\n")
    f.flush()
    rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                        env=env).returncode
  wall = time.time() - t0
  print(f"{name}: exit {rc}, {wall / 60:.1f} min, log {log}", flush=True)
  record.update(rc=rc, wall_s=before + wall)
  _write_record(output_root, record)
  return record


def _write_record(output_root, record):
  write_json(os.path.join(output_root, f"{record['name']}.run.json"), record)


def write_json(path, obj):
  """Writes JSON whole or not at all (temporary file, then rename)."""
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=1)
  os.replace(tmp, path)


def reused(name, output_root):
  """The record `train` left in OUTPUT_ROOT/NAME.run.json (wall time, exit code), or one
  with an unknown wall time for runs that have none."""
  path = os.path.join(output_root, f"{name}.run.json")
  if os.path.exists(path):
    with open(path) as f:
      return {**json.load(f), "dir": os.path.join(output_root, name)}
  return {"name": name, "dir": os.path.join(output_root, name), "rc": 0,
          "wall_s": float("nan"), "command": "(reused)"}


def final_metrics(run_dir, problem=None, role="test"):
  """The newest `role` evaluation of a run by its trainer (of `problem`, for a joint
  run; of a single-problem run when `problem` is None) -> its metrics. With
  TrainConfig.select the final pass reads the best checkpoint and is tagged 'best'
  (metrics_ROLE_best[_PROBLEM]_stepN.json); other tags (onemodel-eval's, --follow's)
  are another process's evaluations, not the run's figure."""
  records = []
  for path in glob.glob(os.path.join(run_dir, f"metrics_{role}_*step*.json")):
    with open(path) as f:
      record = json.load(f)
    if record.get("split", role) != role or record.get("tag", "") not in ("", "best"):
      continue
    if (record.get("problem") == problem) if problem else not record.get("mixture"):
      # Files from before the records carried their time: the file's.
      records.append((record.get("time") or os.path.getmtime(path), record))
  return max(records, key=lambda r: r[0])[1]["metrics"] if records else None


def metrics_by_step(run_dir, role, problem=None, mixture=False):
  """{step: metrics} of every evaluation of a run on split `role` (of `problem`, in a
  mixture run: the trainer writes metrics_ROLE[_PROBLEM]_stepN.json)."""
  pattern = f"metrics_{role}_{problem}_step*.json" if mixture else \
      f"metrics_{role}_step*.json"
  out = {}
  for path in glob.glob(os.path.join(run_dir, pattern)):
    with open(path) as f:
      record = json.load(f)
    if not record.get("tag"):
      out[int(record["step"])] = record["metrics"]
  return out


def scalars(run_dir, tags, sub="train"):
  """{tag: {step: value}} of the given TensorBoard scalar tags of a run."""
  import tensorflow as tf
  out = {t: {} for t in tags}
  for path in sorted(glob.glob(os.path.join(run_dir, sub, "events.out.tfevents.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for v in event.summary.value:
        if v.tag in out:
          value = float(tf.make_ndarray(v.tensor)) if v.HasField("tensor") else v.simple_value
          out[v.tag][event.step] = value
  return out


def git_rev(root):
  try:
    return subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "?"


def cpu_model() -> str:
  """The CPU's model name and whether it has AVX-512 (machines here differ 2x in peak)."""
  try:
    with open("/proc/cpuinfo") as f:
      info = f.read()
  except OSError:
    return platform.processor() or platform.machine()
  names = re.findall(r"^model name\s*:\s*(.+)$", info, re.M)
  name = names[0].strip() if names else platform.machine()
  return f"{name} ({'AVX-512' if 'avx512f' in info else 'no AVX-512'})"


def machine() -> str:
  return f"{platform.node()} {platform.machine()} {cpu_model()}, {os.cpu_count()} cores, no GPU"


# Two-sided 95% quantiles t_{0.975, df} of Student's t for df = 1..30.
_T975 = [12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
         2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
         2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423]


def t975(df: int) -> float:
  """t_{0.975, df}: the table above, beyond it the Cornish-Fisher expansion around
  z = 1.96 (within 1e-3 for df > 30)."""
  if df < 1:
    raise ValueError(f"t quantile needs df >= 1, got {df}")
  if df <= len(_T975):
    return _T975[df - 1]
  z = 1.959964
  return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def mean_sd(values):
  """(mean, sample standard deviation; 0 for one value) of a list of numbers."""
  n = len(values)
  mean = sum(values) / n
  var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
  return mean, math.sqrt(var)


def paired_interval(a, b):
  """Mean of b[i] - a[i] and its 95% t-interval, pairing a and b by index (e.g. by seed:
  runs of one seed share the data order of that seed) -> (mean, low, high).

  mean ± t_{0.975, n-1} * sd / sqrt(n) of the n differences; needs n >= 2."""
  if len(a) != len(b) or len(a) < 2:
    raise ValueError(f"paired interval needs two equal lists of >= 2 values, got "
                     f"{len(a)} and {len(b)}")
  diffs = [y - x for x, y in zip(a, b)]
  mean, sd = mean_sd(diffs)
  half = t975(len(diffs) - 1) * sd / math.sqrt(len(diffs))
  return mean, mean - half, mean + half


def seeds_to_detect(mean: float, sd: float, limit: int = 1000):
  """The fewest seeds n >= 2 whose paired 95% interval, at this mean difference and sd of
  the differences, would exclude zero: t_{0.975, n-1} * sd / sqrt(n) < |mean|. None for a
  zero mean (or beyond `limit`)."""
  if mean == 0:
    return None
  for n in range(2, limit + 1):
    if t975(n - 1) * sd / math.sqrt(n) < abs(mean):
      return n
  return None


def verdict(mean: float, low: float, high: float, n: int, sd: float,
            better: str = "higher") -> str:
  """A paired difference (b - a, 95% interval [low, high] over n seeds) in words: 'gain'
  or 'loss' for b when the interval excludes zero (`better`: which direction is a gain),
  else how many seeds would detect a difference of this size."""
  if low > 0 or high < 0:
    return "gain" if (low > 0) == (better == "higher") else "loss"
  need = seeds_to_detect(mean, sd)
  return (f"no difference detectable with {n} seeds" +
          (f" (about {need} would detect one of this size)" if need else ""))

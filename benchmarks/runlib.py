"""Shared pieces of the benchmark scripts: run onemodel-train as a subprocess, read a
run's final metrics and its TensorBoard scalars, describe the machine."""

import glob
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")


def train(name, gin_files, params, output_root, manual_dir, data_dir):
  """onemodel-train into OUTPUT_ROOT/NAME (log next to it) -> run record."""
  out = os.path.join(output_root, name)
  cmd = [os.path.join(os.path.dirname(sys.executable), "onemodel-train"),
         *[f"--gin_file={f}" for f in gin_files], f"--output_dir={out}",
         f"--manual_dir={manual_dir}", f"--data_dir={data_dir}",
         *[f"--gin_param={p}" for p in params]]
  os.makedirs(output_root, exist_ok=True)
  log = os.path.join(output_root, f"{name}.log")
  t0 = time.time()
  with open(log, "w") as f:
    rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
  wall = time.time() - t0
  print(f"{name}: exit {rc}, {wall / 60:.1f} min, log {log}", flush=True)
  record = {"name": name, "dir": out, "rc": rc, "wall_s": wall, "command": " ".join(cmd)}
  with open(os.path.join(output_root, f"{name}.run.json"), "w") as f:
    json.dump(record, f, indent=1)
  return record


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
  """The newest metrics JSON of a run (of `problem`, for a joint run) -> its metrics."""
  pattern = f"metrics_{role}_{problem}_step*.json" if problem else f"metrics_{role}_step*.json"
  files = sorted(glob.glob(os.path.join(run_dir, pattern)), key=os.path.getmtime)
  return json.load(open(files[-1]))["metrics"] if files else None


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


def machine() -> str:
  return f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, no GPU"

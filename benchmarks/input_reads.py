"""Bytes each worker reads for one epoch of the training split, sharded at the source
(TrainConfig.input_sharding='source', the default) vs every worker reading the whole
split and keeping its own batches ('batches').

  PYTHONPATH=. python benchmarks/input_reads.py --manual_dir=../shared/data \
      [--problems=mnist,fsdd,sst2,multi30k_en_de --workers=2 --num_shards=8]

The problems are prepared twice: as TFDS writes them by default (one file per split for
the built-in problems, which are small) into --data_dir, and with --num_shards files per
split (`onemodel-prepare --num_shards`) into DATA_DIR_Nfiles. For each, problem and
worker k of N, a fresh process iterates worker k's raw training
records for one epoch (`data.raw_split(..., share=(N, k))`, or the whole split for
'batches') and reports the bytes its threads read (`rchar` of /proc/self/io, from before the
dataset is built to the end of the epoch: TFDS's metadata, a few kB, included; page-cache
hits count too) and the records it got.
Writes benchmarks/results/input_reads.md."""

import argparse
import json
import os
import subprocess
import sys

from runlib import RESULTS, ROOT, machine

_CHILD = r"""
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
from onemodel import data as data_lib
from onemodel import registry
registry.load_plugins()
name, data_dir, n, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
p = registry.get_problem(name)

def rchar():
  with open("/proc/self/io") as f:
    return int(next(l for l in f if l.startswith("rchar")).split()[1])

before = rchar()
ds = data_lib.raw_split(p, "train", data_dir, share=(n, k) if k >= 0 else None)
count = sum(1 for _ in ds)
print(json.dumps({"bytes": rchar() - before, "records": count}))
"""


def measure(problem, data_dir, n, k):
  out = subprocess.run([sys.executable, "-c", _CHILD, problem, data_dir, str(n), str(k)],
                       capture_output=True, text=True, check=True, cwd=ROOT)
  return json.loads(out.stdout.strip().splitlines()[-1])


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--manual_dir", required=True)
  ap.add_argument("--data_dir", default=os.path.join(ROOT, "runs", "ttt_data"))
  ap.add_argument("--problems", default="mnist,fsdd,sst2,multi30k_en_de")
  ap.add_argument("--workers", type=int, default=2)
  ap.add_argument("--num_shards", type=int, default=8)
  args = ap.parse_args()
  base = os.path.abspath(args.data_dir)
  rows = ["| problem | train files | train split, MB | 'batches': MB read per worker | "
          "'source': MB read by worker 0..N-1 | records per worker ('source') |",
          "|---|---|---|---|---|---|"]
  for data_dir, shards in [(base, 0), (f"{base}_{args.num_shards}files", args.num_shards)]:
    subprocess.run([sys.executable, "-m", "onemodel.cli.prepare",
                    f"--problem={args.problems}", f"--manual_dir={args.manual_dir}",
                    f"--data_dir={data_dir}", f"--num_shards={shards}"], cwd=ROOT,
                   check=True, capture_output=True)
    for name in args.problems.split(","):
      whole = measure(name, data_dir, 1, -1)
      shares = [measure(name, data_dir, args.workers, k) for k in range(args.workers)]
      assert sum(s["records"] for s in shares) == whole["records"], (name, shares, whole)
      files = [os.path.join(d, f) for d, _, fs in os.walk(data_dir) for f in fs
               if f"onemodel_{name}-train.tfrecord" in f]
      size = sum(os.path.getsize(f) for f in files)
      mbs = ", ".join(f"{s['bytes'] / 1e6:.1f}" for s in shares)
      counts = ", ".join(str(s["records"]) for s in shares)
      rows.append(f"| {name} | {len(files)} | {size / 1e6:.1f} | {whole['bytes'] / 1e6:.1f} "
                  f"| {mbs} | {counts} |")
      print(rows[-1], flush=True)
  text = "\n".join([
      "# Bytes read per worker, one epoch of the training split",
      "",
      f"Machine: {machine()}.",
      "",
      f"Command: `python benchmarks/input_reads.py --manual_dir={args.manual_dir} "
      f"--problems={args.problems} --workers={args.workers} "
      f"--num_shards={args.num_shards}`",
      "",
      f"{args.workers} workers. Bytes = `rchar` of the reading process over one epoch of "
      "raw records, from building the dataset to its end.",
      "", *rows, ""])
  with open(os.path.join(RESULTS, "input_reads.md"), "w") as f:
    f.write(text)


if __name__ == "__main__":
  main()

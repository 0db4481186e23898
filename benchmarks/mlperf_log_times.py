"""Reads MLPerf Training result logs (MLLOG lines) the way records.csv's MLPerf rows are
read: per system, the olympic mean of run_stop - run_start (fastest and slowest run
dropped; a run whose run_stop status is not success counts as the slowest, as MLPerf
scores it), the median epoch_num of the last evaluation, the logged global_batch_size.

  python benchmarks/mlperf_log_times.py RESULT_DIR [RESULT_DIR ...]

RESULT_DIR is a `<submitter>/results/<system>/<benchmark>/` directory of a checkout of
github.com/mlcommons/training_results_vX.Y, holding result_0.txt ... result_N.txt.
"""

import glob
import json
import os
import statistics
import sys


def read_log(path):
  """{'seconds', 'success', 'epoch' (of the last evaluation), 'global_batch'}."""
  start = stop = batch = None
  status, epoch = "", None
  with open(path, errors="replace") as f:
    for line in f:
      i = line.find(":::MLLOG ")
      if i < 0:
        continue
      try:
        d = json.loads(line[i + len(":::MLLOG "):])
      except ValueError:
        continue
      key = d.get("key")
      meta = d.get("metadata") or {}
      if key == "run_start":
        start = d["time_ms"]
      elif key == "run_stop":
        stop, status = d["time_ms"], meta.get("status", "")
      elif key == "eval_accuracy":
        epoch = meta.get("epoch_num", epoch)
      elif key == "global_batch_size":
        batch = d.get("value")
  if start is None or stop is None:
    raise ValueError(f"{path}: no run_start/run_stop")
  return {"seconds": (stop - start) / 1e3, "success": status == "success",
          "epoch": epoch, "global_batch": batch}


def olympic_mean(runs):
  """Mean of the run times with the fastest and the slowest dropped; an unsuccessful
  run is the slowest."""
  keyed = sorted(runs, key=lambda r: (not r["success"], r["seconds"]))
  kept = keyed[1:-1] if len(keyed) > 2 else keyed
  return sum(r["seconds"] for r in kept) / len(kept)


def summarize(result_dir):
  paths = sorted(glob.glob(os.path.join(result_dir, "result_*.txt")))
  runs = [read_log(p) for p in paths]
  epochs = [r["epoch"] for r in runs if r["epoch"] is not None]
  return {"dir": result_dir, "runs": len(runs),
          "failed": sum(not r["success"] for r in runs),
          "olympic_mean_s": olympic_mean(runs),
          "epochs": statistics.median(epochs) if epochs else None,
          "epochs_all": epochs,
          "global_batch": sorted({r["global_batch"] for r in runs} - {None})}


def main(argv):
  for d in argv[1:]:
    s = summarize(d)
    print(f"{s['dir']}: {s['runs']} runs ({s['failed']} not success), olympic mean "
          f"{s['olympic_mean_s']:.1f} s, epochs {s['epochs']} {s['epochs_all']}, "
          f"global batch {s['global_batch']}")


if __name__ == "__main__":
  main(sys.argv)

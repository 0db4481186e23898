"""Kill drill: `kill -9` one training run at many moments, re-run the same command each
time, and compare the result with a run that was never interrupted.

  python benchmarks/kill_drill.py --manual_dir=../shared/data [--kills=12] [--steps=300]
      [--joint]

Moments: during data preparation (fresh --data_dir), right after a log line that a
checkpoint write follows, at random times 3-10 s into a re-run (start-up, restore, the
first steps), and during the final checkpoint write and evaluation.
Reports: whether every re-run started (no error before it was killed), the final
weights' max abs difference against the uninterrupted run, and both runs' test metric.
Writes benchmarks/results/kill_drill.md. --joint: the run is one model on a mixture of
mnist and fsdd with dropout 0.1 (a mixture's draws, two input positions and dropout's
random state must all resume exactly); writes kill_drill_joint.md.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


JOINT = ["joint/Mixture.name='drill_mix'", "joint/Mixture.problems=['mnist', 'fsdd']",
         "TrainConfig.problem=@joint/Mixture()", "BackboneConfig.dropout_rate=0.1"]


def command(out, data_dir, manual_dir, steps, joint=False):
  params = [f"TrainConfig.train_steps={steps}", "TrainConfig.checkpoint_every_steps=25",
            "TrainConfig.log_every_steps=25", "TrainConfig.deterministic=True",
            "ImageConfig.random_shift=2"] + (JOINT if joint else [])
  return ([os.path.join(os.path.dirname(sys.executable), "onemodel-train"),
           "--gin_file=gin/experiments/quickstart.gin", f"--output_dir={out}",
           f"--data_dir={data_dir}", f"--manual_dir={manual_dir}"]
          + [f"--gin_param={p}" for p in params])


def run_once(cmd, kill_when=None, kill_after_s=None):
  """Runs cmd; kills it (SIGKILL) when a stdout line satisfies kill_when or after
  kill_after_s seconds. -> (return code, killed, last line, seconds)."""
  t0 = time.time()
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  killed, last = [False], [""]
  if kill_after_s is not None:
    def timer():
      time.sleep(kill_after_s)
      if proc.poll() is None:
        killed[0] = True
        proc.send_signal(signal.SIGKILL)
    threading.Thread(target=timer, daemon=True).start()
  errors = []
  for line in proc.stdout:
    line = line.rstrip()
    if line.startswith(("step ", "eval ", "resumed", "onemodel")):
      last[0] = line
    if "Traceback" in line or line.startswith("onemodel-train: error"):
      errors.append(line)
    if kill_when is not None and kill_when(line) and proc.poll() is None:
      killed[0] = True
      proc.send_signal(signal.SIGKILL)
  proc.wait()
  return proc.returncode, killed[0], last[0], time.time() - t0, errors


def weights(run_dir, step):
  import tensorflow as tf
  path = os.path.join(run_dir, "checkpoints", f"ckpt-{step}")
  return {n: tf.train.load_variable(path, n) for n, _ in tf.train.list_variables(path)
          if n.startswith("weights/")}


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--manual_dir", required=True)
  ap.add_argument("--kills", type=int, default=12)
  ap.add_argument("--steps", type=int, default=600)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--joint", action="store_true", help="a mixture of mnist and fsdd, dropout")
  ap.add_argument("--out", default="")
  args = ap.parse_args()
  args.out = args.out or os.path.join(
      ROOT, "benchmarks/results", "kill_drill_joint.md" if args.joint else "kill_drill.md")
  rng = random.Random(args.seed)
  manual = os.path.abspath(args.manual_dir)
  work = tempfile.mkdtemp(prefix="kill_drill_")

  ref_dir = os.path.join(work, "reference")
  rc, _, _, ref_s, errors = run_once(command(ref_dir, os.path.join(work, "data_ref"),
                                             manual, args.steps, args.joint))
  assert rc == 0, errors
  print(f"uninterrupted run: {ref_s:.0f} s", flush=True)

  drill, data = os.path.join(work, "drill"), os.path.join(work, "data_drill")
  cmd = command(drill, data, manual, args.steps, args.joint)
  plan = [("during data preparation", None, 4.0),
          ("right after a log line (a checkpoint write follows)",
           lambda l: l.startswith("step 50/"), None),
          ("right after a log line (a checkpoint write follows)",
           lambda l: l.startswith("step 150/"), None)]
  # Random moments early in each re-run (start-up, restore, the first chunks, the next
  # checkpoint write): the run must still have work left for the last, targeted kill.
  plan += [("random moment", None, rng.uniform(3.0, 10.0)) for _ in range(args.kills - 4)]
  plan += [("during the final evaluation",
            lambda l: l.startswith(f"step {args.steps}/"), None)]
  rows, all_started = [], True
  for what, when, after in plan:
    rc, killed, last, secs, errors = run_once(cmd, when, after)
    started = not errors and (killed or rc == 0)
    all_started &= started
    rows.append((what, f"{after:.1f} s" if after else "on a line", killed, rc, last[:70],
                 "yes" if started else "NO: " + "; ".join(errors)[:120]))
    print(rows[-1], flush=True)
  rc, _, last, _, errors = run_once(cmd)
  assert rc == 0, errors
  ref, got = weights(ref_dir, args.steps), weights(drill, args.steps)
  diff = max(float(np.max(np.abs(ref[k] - got[k]))) for k in ref)
  names = ["mnist", "fsdd"] if args.joint else [""]

  def metrics(d):
    out = []
    for name in names:
      path = os.path.join(d, f"metrics_test_{name + '_' if name else ''}step{args.steps}.json")
      m = json.load(open(path))["metrics"]
      out.append(f"{name} accuracy {m['accuracy']:.2f}".strip())
    return ", ".join(out)

  what = ("a mixture of mnist and fsdd (tiny, dropout 0.1)" if args.joint
          else "gin/experiments/quickstart.gin")
  lines = ["# Kill drill (kill -9 at many moments of one run, then the same command again)",
           "", f"Command: `python benchmarks/kill_drill.py --manual_dir={args.manual_dir} "
           f"--kills={args.kills} --steps={args.steps}{' --joint' if args.joint else ''}` "
           f"({what} from gin/experiments/quickstart.gin, deterministic, random shift 2, "
           "checkpoint and log every 25 steps).", "",
           "| # | moment | when | killed | exit | last line before the kill | re-run started |",
           "|---|---|---|---|---|---|---|"]
  for i, r in enumerate(rows, 1):
    lines.append(f"| {i} | " + " | ".join(str(x) for x in r) + " |")
  lines += ["", f"- every re-run started: **{'yes' if all_started else 'NO'}**",
            f"- final weights, max abs difference against the uninterrupted run: **{diff:g}**",
            f"- test: uninterrupted {metrics(ref_dir)}; killed {len(rows)} times and re-run "
            f"{metrics(drill)}", f"- uninterrupted wall time {ref_s:.0f} s"]
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  open(args.out, "w").write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()

"""The planner against whole training steps over a shaped link: onemodel-train of
multi30k_en_de at base size (7,569,664 parameters, a 30 MB fp32 gradient) with
MultiWorkerMirroredStrategy, one worker in each of two network namespaces joined by a veth
pair shaped with `tc ... tbf` (see plan_netns.py, whose namespace helpers this reuses).

  sudo python benchmarks/plan_netns_train.py --manual_dir=../shared/data \
      --data_dir=DIR [--rates=100mbit,1gbit] [--steps=40]

First one worker alone (in namespace A, no network) measures the chip: target tokens/s and
the spread of its logged intervals. The planner then predicts the two-worker steps/s at
each rate: compute = per-worker tokens / (measured tokens/s / 2) (two workers share this
machine's cores), + the ring all-reduce of the gradient at the tbf rate with the latency
term of a 4 KB all-reduce measured on the link, + the expected wait for the slower of two.
Uses only 10.200.0.1/2 on its own namespaces and deletes them at the end.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys

import plan_netns as nns

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARAMS = 7_569_664  # the base-size multi30k_en_de model (checkpoint of runs/multi30k_base)


def train(workers, args, out):
  """Runs onemodel-train with `workers` workers (worker i in namespace i); returns the
  progress lines of worker 0."""
  bin_dir = os.path.dirname(sys.executable)
  gin = [f"--gin_file={ROOT}/gin/experiments/multi30k_en_de_base.gin"] + [
      f"--gin_param={p}" for p in (
          f"TrainConfig.train_steps={args.steps}", "TrainConfig.batch_tokens=0",
          "TrainConfig.pack=True", "TrainConfig.batch_size=16",
          "TrainConfig.log_every_steps=10", "TrainConfig.checkpoint_every_steps=100000",
          "TrainConfig.report_mfu=False", "TrainConfig.final_eval_role=''",
          "learning_rate_schedule.warmup_steps=100")]
  subprocess.run(["rm", "-rf", out])
  procs = []
  for i in range(workers):
    env = dict(os.environ, TF_CONFIG=json.dumps({
        "cluster": {"worker": [f"{a}:{nns.PORT}" for a in nns.ADDR[:workers]]},
        "task": {"type": "worker", "index": i}}))
    strategy = "multi_worker" if workers > 1 else "one_device"
    procs.append(subprocess.Popen(
        ["ip", "netns", "exec", nns.NS[i], "nice", "-n", "10",
         os.path.join(bin_dir, "onemodel-train"), *gin, f"--output_dir={out}",
         f"--strategy={strategy}", f"--data_dir={args.data_dir}",
         f"--manual_dir={args.manual_dir}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  logs = [p.communicate(timeout=900)[0] for p in procs]
  return [l for l in logs[0].splitlines() if re.match(r"step \d+/", l)]


def rates_of(lines):
  """(steps/s, target tokens/s) medians over the progress lines after the first."""
  sps = [float(re.search(r"\| ([\d.]+) steps/s", l).group(1)) for l in lines][1:]
  tok = [float(re.search(r"\| ([\d.]+) tok/s", l).group(1)) for l in lines][1:]
  return statistics.median(sps), statistics.median(tok), sps


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--manual_dir", required=True)
  ap.add_argument("--data_dir", required=True)
  ap.add_argument("--rates", default="100mbit,1gbit")
  ap.add_argument("--steps", type=int, default=40)
  ap.add_argument("--output_root", default="/tmp/plan_netns_train")
  args = ap.parse_args()
  from onemodel.plan import collectives, stragglers
  rows = []
  try:
    nns.setup()
    one = train(1, args, os.path.join(args.output_root, "w1"))
    sps1, tok1, intervals = rates_of(one)
    cv = stragglers.per_step_cv([1 / s for s in intervals], 1)
    tokens_per_step = tok1 / sps1
    for rate in args.rates.split(","):
      nns.shape(rate)
      alpha = statistics.median(nns.measure(0.004, 5))
      two = train(2, args, os.path.join(args.output_root, f"w2_{rate}"))
      sps2, tok2, _ = rates_of(two)
      compute = (tokens_per_step / 2) / (tok1 / 2)   # half the batch at half the speed
      comm = collectives.ring_allreduce_s(4 * PARAMS, 2, nns.rate_bits(rate) / 8, alpha / 2)
      strag = stragglers.straggler_wait_s(compute, cv, 2)
      pred = 1.0 / (compute + comm + strag)
      rows.append((rate, alpha, compute, comm, strag, pred, sps2, tok2))
  finally:
    nns.teardown()
  print(f"multi30k_en_de base size, batch 16 packed rows ({tokens_per_step:,.0f} target "
        f"tokens a step), {args.steps} steps; 1 worker alone: {sps1:.3f} steps/s, "
        f"{tok1:,.0f} tok/s, interval spread cv {cv:.2f}")
  print("| tbf rate | 4 KB all-reduce | predicted: compute + all-reduce + stragglers | "
        "predicted steps/s | measured steps/s | error |")
  print("|---|---|---|---|---|---|")
  for rate, alpha, c, m, s, pred, got, _ in rows:
    print(f"| {rate} | {alpha * 1e3:.1f} ms | {c:.2f} + {m:.2f} + {s:.2f} s | {pred:.3f} | "
          f"{got:.3f} | {100 * (pred / got - 1):+.0f}% |")


if __name__ == "__main__":
  main()

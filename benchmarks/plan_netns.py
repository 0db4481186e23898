"""The planner's communication term against real transfers: two TensorFlow workers in two
network namespaces joined by a veth pair whose bandwidth `tc ... tbf` sets, all-reducing
a gradient of known size with MultiWorkerMirroredStrategy (ring collectives over gRPC).

  sudo python benchmarks/plan_netns.py [--mbytes=30.28] [--rates=100mbit,300mbit,1gbit]

Needs root (ip netns, tc). Uses only the addresses it gives its own namespaces
(10.200.0.1/24 and 10.200.0.2/24) and deletes the namespaces at the end. Prints, per rate:
the measured all-reduce time (median of repeats on worker 0) and the planner's ring
all-reduce prediction, 2 (n-1)/n * bytes / bandwidth + 2 (n-1) * latency, n = 2, with the
bandwidth the tbf rate and the latency term measured separately as the time of a 4 KB
all-reduce over the same link (the alpha of the alpha-beta model; no ping here).

Default size: the fp32 gradient of the multi30k_en_de base-size run (7,569,664
parameters = 30.28 MB), the model this README's worked example plans from.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

NS = ("om_plan_a", "om_plan_b")
DEV = ("om_veth_a", "om_veth_b")
ADDR = ("10.200.0.1", "10.200.0.2")
PORT = 23456


def sh(*cmd, check=True):
  return subprocess.run(cmd, check=check, capture_output=True, text=True)


def setup():
  teardown()
  for ns in NS:
    sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
  sh("ip", "link", "add", DEV[0], "netns", NS[0], "type", "veth", "peer", "name", DEV[1],
     "netns", NS[1])
  for ns, dev, addr in zip(NS, DEV, ADDR):
    sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
    sh("ip", "-n", ns, "link", "set", dev, "up")


def shape(rate):
  for ns, dev in zip(NS, DEV):
    sh("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root", "tbf",
       "rate", rate, "burst", "256kb", "latency", "400ms")


def teardown():
  for ns in NS:
    sh("ip", "netns", "del", ns, check=False)


def worker(index, mbytes, repeats):
  """One worker process (run inside its namespace)."""
  os.environ["TF_CONFIG"] = json.dumps({
      "cluster": {"worker": [f"{a}:{PORT}" for a in ADDR]},
      "task": {"type": "worker", "index": index}})
  import tensorflow as tf
  strategy = tf.distribute.MultiWorkerMirroredStrategy(
      communication_options=tf.distribute.experimental.CommunicationOptions(
          implementation=tf.distribute.experimental.CommunicationImplementation.RING))
  n = int(mbytes * 1e6 / 4)

  @tf.function
  def step(i):
    def fn():
      ctx = tf.distribute.get_replica_context()
      # Input depends on the step so nothing is cached or hoisted.
      x = tf.fill([n], tf.cast(i, tf.float32))
      return tf.reduce_sum(ctx.all_reduce(tf.distribute.ReduceOp.SUM, x)[:8])
    return strategy.run(fn)

  step(tf.constant(0)).numpy()  # warm-up: graph, collective setup
  times = []
  for i in range(repeats):
    t0 = time.perf_counter()
    step(tf.constant(i + 1)).numpy()
    times.append(time.perf_counter() - t0)
  if index == 0:
    print(json.dumps({"times": times}), flush=True)


def measure(mbytes, repeats):
  procs = []
  for i, ns in enumerate(NS):
    procs.append(subprocess.Popen(
        ["ip", "netns", "exec", ns, "nice", "-n", "10", sys.executable, __file__,
         f"--worker={i}", f"--mbytes={mbytes}", f"--repeats={repeats}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  outs = [p.communicate(timeout=600) for p in procs]
  for line in outs[0][0].splitlines():
    if line.startswith("{"):
      return json.loads(line)["times"]
  raise RuntimeError("worker 0 printed no timing:\n" + outs[0][1][-3000:])


def rate_bits(rate):
  m = re.fullmatch(r"([\d.]+)(k|m|g)bit", rate)
  return float(m.group(1)) * {"k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)]


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--mbytes", type=float, default=30.28)
  ap.add_argument("--rates", default="100mbit,300mbit,1gbit")
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--worker", type=int, default=-1)
  args = ap.parse_args()
  if args.worker >= 0:
    return worker(args.worker, args.mbytes, args.repeats)
  from onemodel.plan import collectives
  rows = []
  try:
    setup()
    for rate in args.rates.split(","):
      shape(rate)
      alpha = statistics.median(measure(0.004, args.repeats))  # = 2 (n-1) latency
      times = measure(args.mbytes, args.repeats)
      bw = rate_bits(rate) / 8
      pred = collectives.ring_allreduce_s(args.mbytes * 1e6, 2, bw, alpha / 2)
      rows.append((rate, alpha, statistics.median(times), min(times), pred))
  finally:
    teardown()
  print(f"all-reduce of {args.mbytes:g} MB (fp32) between 2 workers in 2 network "
        f"namespaces (veth + tc tbf), MultiWorkerMirroredStrategy RING, median of "
        f"{args.repeats}")
  print("| tbf rate | 4 KB all-reduce (latency term) | measured (median) | measured (min) | "
        "planner | error (median) |")
  print("|---|---|---|---|---|---|")
  for rate, alpha, med, mn, pred in rows:
    print(f"| {rate} | {alpha * 1e3:.2f} ms | {med:.3f} s | {mn:.3f} s | {pred:.3f} s | "
          f"{100 * (pred / med - 1):+.0f}% |")


if __name__ == "__main__":
  main()

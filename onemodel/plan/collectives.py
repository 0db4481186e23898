"""Time of the collectives that data-parallel training waits on (alpha-beta model:
latency alpha per message hop, bandwidth beta per byte; Thakur, Rabenseifner & Gropp 2005,
"Optimization of collective communication operations in MPICH", IJHPCA 19(1)).

All bandwidths are bytes/s in one direction per endpoint.
"""

import math
from typing import Sequence


def ring_allreduce_s(nbytes: float, n: int, bandwidth: float, latency_s: float) -> float:
  """Ring all-reduce: a reduce-scatter then an all-gather, each n-1 steps moving
  nbytes/n per step (Patarasuk & Yuan 2009, "Bandwidth optimal all-reduce algorithms",
  JPDC 69(2)): 2 (n-1)/n * nbytes / bandwidth + 2 (n-1) * latency."""
  if n <= 1:
    return 0.0
  return 2.0 * (n - 1) / n * nbytes / bandwidth + 2.0 * (n - 1) * latency_s


def hierarchical_allreduce_s(nbytes: float, chips: int, per_node: int, intra_bw: float,
                             intra_lat: float, node_bw: float, inter_lat: float) -> float:
  """Reduce-scatter inside each node, ring all-reduce across nodes of the 1/g shards (all
  g shards cross the node's NICs at once, so a node moves 2(n-1)/n * nbytes in total),
  all-gather inside the node. This is NCCL's/Horovod's two-level scheme (Sergeev & Del
  Balso 2018, arXiv:1802.05799; Jia et al. 2018, arXiv:1807.11205 sec. 3.3)."""
  g = min(per_node, chips)
  nodes = math.ceil(chips / g)
  t = 0.0
  if g > 1:  # reduce-scatter + all-gather inside the node: (g-1)/g each.
    t += 2.0 * (g - 1) / g * nbytes / intra_bw + 2.0 * (g - 1) * intra_lat
  if nodes > 1:
    t += 2.0 * (nodes - 1) / nodes * nbytes / node_bw + 2.0 * (nodes - 1) * inter_lat
  return t


def torus_dims(chips: int, ndims: int) -> Sequence[int]:
  """A near-cubic factorisation of `chips` into `ndims` torus dimensions."""
  dims = [1] * ndims
  left = chips
  for i in range(ndims, 0, -1):
    d = max(1, round(left ** (1.0 / i)))
    while left % d:
      d -= 1
    dims[ndims - i] = d
    left //= d
  return sorted(dims, reverse=True)


def torus_allreduce_s(nbytes: float, chips: int, ndims: int, bandwidth: float,
                      latency_s: float) -> float:
  """All-reduce on a k-D torus, one ring per dimension in turn (Ying et al. 2018,
  "Image classification at supercomputer scale", arXiv:1811.06992 sec. 3.3: 2-D
  gradient summation). Bytes: the full 2(N-1)/N * nbytes at the per-chip all-reduce
  bandwidth; latency: 2 (d_i - 1) hops per dimension."""
  if chips <= 1:
    return 0.0
  dims = torus_dims(chips, ndims)
  hops = sum(2 * (d - 1) for d in dims)
  return 2.0 * (chips - 1) / chips * nbytes / bandwidth + hops * latency_s


def parameter_server_s(nbytes: float, workers: int, servers: int, worker_bw: float,
                       server_bw: float, latency_s: float) -> float:
  """One worker step's push of gradients and pull of parameters (Li et al. 2014,
  "Scaling distributed ML with the parameter server", OSDI): the worker moves 2 nbytes
  through its own link; the parameters are sharded over `servers`, and when all workers
  are in flight each server moves 2 * workers * nbytes / servers. The slower side wins."""
  worker_side = 2.0 * nbytes / worker_bw
  server_side = 2.0 * workers * nbytes / (max(servers, 1) * server_bw)
  return max(worker_side, server_side) + 2.0 * latency_s

"""What model parallelism buys when data parallelism runs out (batch 1 included).

Pipeline: p stages and m micro-batches leave a bubble of (p - 1) / (m + p - 1) of the
time idle (Huang et al. 2019, GPipe, arXiv:1811.06965 sec. 2.3). At batch 1 there is one
micro-batch, so p stages are busy 1/p of the time.

Tensor (intra-layer) parallelism: each transformer layer all-reduces its activations
twice in the forward and twice in the backward pass (Shoeybi et al. 2019, Megatron-LM,
arXiv:1909.08053 sec. 3, Fig. 4): 4 all-reduces of B x L x D values per layer per step,
which no batch size amortises.
"""

from onemodel.plan import collectives


def pipeline_bubble(stages: int, micro_batches: int) -> float:
  """(p - 1) / (m + p - 1), the idle fraction of a GPipe schedule."""
  if stages < 1 or micro_batches < 1:
    raise ValueError("stages and micro_batches must be >= 1")
  return (stages - 1) / (micro_batches + stages - 1)


def tensor_parallel_comm_s(tokens: float, model_dim: int, layers: int, ways: int,
                           bandwidth: float, latency_s: float,
                           bytes_per_value: int = 2) -> float:
  """4 ring all-reduces of tokens x model_dim activations per layer (Megatron-LM)."""
  nbytes = tokens * model_dim * bytes_per_value
  return 4 * layers * collectives.ring_allreduce_s(nbytes, ways, bandwidth, latency_s)


def tensor_parallel_efficiency(compute_s: float, comm_s: float, ways: int) -> float:
  """Useful fraction of a step split `ways` ways: (compute / ways) / (compute / ways +
  exposed communication)."""
  share = compute_s / ways
  return share / (share + comm_s)


def batch1_chips(compute_s: float, tokens: float, model_dim: int, layers: int,
                 bandwidth: float, latency_s: float, max_ways: int = 4096,
                 target: float = 0.5) -> dict:
  """How many chips one example (batch 1) keeps busy at >= `target` efficiency: the
  largest tensor-parallel width t meeting the target, times the pipeline stages p whose
  bubble still leaves efficiency >= target (p stages at m = 1 micro-batch: 1/p)."""
  best_t, eff_t = 1, 1.0
  t = 2
  while t <= max_ways:
    comm = tensor_parallel_comm_s(tokens, model_dim, layers, t, bandwidth, latency_s)
    eff = tensor_parallel_efficiency(compute_s, comm, t)
    if eff < target:
      break
    best_t, eff_t = t, eff
    t *= 2
  # Pipelining one example: efficiency eff_t * 1/p >= target.
  best_p = 1
  while eff_t / (best_p * 2) >= target:
    best_p *= 2
  return {"tensor_parallel": best_t, "pipeline_stages": best_p,
          "chips": best_t * best_p, "efficiency": eff_t / best_p}

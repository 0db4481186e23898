"""Where adding chips stops paying, and why; sync against async at each size.

Two sweeps over chip counts 1, 2, 4, ...:
  * weak scaling: the per-chip batch stays, so the global batch grows with the chips -
    steps stop falling once B passes the critical batch B_noise (McCandlish et al. 2018,
    sec. 2.2: past B_noise a doubled batch saves few steps);
  * strong scaling: the global batch stays, so the per-chip batch shrinks - the fixed
    all-reduce and update per step come to dominate, until one example per chip is left.
Adding chips "stops paying" at the first doubling that cuts time to target by less than
DOUBLING_GAIN (1.25x: a doubling at 62.5% parallel efficiency).
"""

import dataclasses
from typing import List

from onemodel.plan import planner

DOUBLING_GAIN = 1.25
MAX_CHIPS = 1 << 16


def _reason(a: dict, b: dict) -> str:
  steps_ratio = b["steps"] / a["steps"]
  batch_ratio = b["global_batch"] / a["global_batch"]
  overhead = (b["communication_s"] + b["straggler_s"] + b.get("optimizer_update_s", 0.0))
  if batch_ratio > 1 and steps_ratio > 1.0 / DOUBLING_GAIN:
    return (f"critical batch: at global batch {b['global_batch']:,.0f} a doubled batch "
            f"saves only {100 * (1 - steps_ratio):.0f}% of the steps (B past B_noise)")
  if overhead > b["compute_s"]:
    return (f"communication bound: all-reduce {1e3 * b['communication_s']:.2f} ms + "
            f"update {1e3 * b.get('optimizer_update_s', 0):.2f} ms + stragglers "
            f"{1e3 * b['straggler_s']:.2f} ms exceed compute {1e3 * b['compute_s']:.2f} "
            f"ms a step")
  return (f"per-chip batch too small: {b['per_chip_batch']:g} {b['unit']}s a chip leave "
          f"fixed per-step costs dominant")


def sweep(w, m, per_chip_batch=None, global_batch=None, opt=None, mfu_table=None,
          max_chips=MAX_CHIPS) -> List[dict]:
  """Plans at 1, 2, 4, ... chips with a fixed per-chip batch (weak) or a fixed global
  batch (strong); stops where the per-chip batch would fall below one example."""
  if (per_chip_batch is None) == (global_batch is None):
    raise ValueError("give exactly one of per_chip_batch, global_batch")
  out, n = [], 1
  while n <= max_chips:
    b = per_chip_batch * n if per_chip_batch is not None else global_batch
    if b / n < 1:
      break
    out.append(planner.plan(w, m, n, b, opt, mfu_table))
    n *= 2
  return out


def stop_point(rows: List[dict]) -> dict:
  """The first chip count whose doubling gains less than DOUBLING_GAIN, with why."""
  for a, b in zip(rows, rows[1:]):
    gain = a["time_to_train_s"] / b["time_to_train_s"]
    if gain < DOUBLING_GAIN:
      return {"chips": a["chips"], "global_batch": a["global_batch"], "gain": gain,
              "reason": _reason(a, b)}
  last = rows[-1]
  why = "per-chip batch reaches 1" if last["per_chip_batch"] < 2 else \
      f"still scaling at {last['chips']} chips"
  return {"chips": last["chips"], "global_batch": last["global_batch"], "gain": None,
          "reason": why}


def limits(w, m, chips, global_batch, opt=None, mfu_table=None) -> dict:
  opt = opt or planner.Options()
  per_chip = global_batch / chips
  strong = sweep(w, m, global_batch=global_batch, opt=opt, mfu_table=mfu_table)
  sm = w.step_model
  if opt.steps is None and opt.epochs is None and sm.epochs is None and not sm.b_noise:
    # Without B_noise the steps at a larger batch are unknown: saying "stops paying past
    # 1 chip" would be the assumption (steps fixed), not a finding.
    weak = {"chips": None, "global_batch": None, "gain": None,
            "reason": "unknown: the run measured no noise scale, so the steps a larger "
                      "batch needs are unknown; train with TrainConfig.noise_scale=True "
                      "(and grad_accum_steps >= 2) to measure B_noise"}
  else:
    weak = stop_point(sweep(w, m, per_chip_batch=per_chip, opt=opt, mfu_table=mfu_table))
  return {"weak_scaling": dict(weak, per_chip_batch=per_chip),
          "strong_scaling": dict(stop_point(strong), per_chip_batch=None)}


def sync_vs_async(w, m, chips, global_batch, opt=None, mfu_table=None) -> dict:
  opt = opt or planner.Options()
  s = planner.plan(w, m, chips, global_batch, dataclasses.replace(opt, strategy="sync"),
                   mfu_table)
  a = planner.plan(w, m, chips, global_batch, dataclasses.replace(opt, strategy="async"),
                   mfu_table)
  winner = "sync" if s["time_to_train_s"] <= a["time_to_train_s"] else "async"
  if winner == "async":
    why = (f"async saves the all-reduce and straggler wait "
           f"({1e3 * (s['communication_s'] + s['straggler_s']):.2f} ms a sync step) at "
           f"staleness {a['staleness']:g}, whose cost in extra steps is assumed "
           f"({opt.staleness_cost:g} x staleness), not measured for this workload: "
           "measure both (benchmarks/sync_vs_async.py) before switching")
  else:
    why = (f"sync: async pays {a['steps'] / s['steps']:.2f}x the updates (each one "
           f"worker's batch, stale by {a['staleness']:g}) and "
           f"{1e3 * a['communication_s']:.2f} ms of parameter-server transfer each")
  return {"sync_s": s["time_to_train_s"], "async_s": a["time_to_train_s"],
          "winner": winner, "why": why}


def batch1(w, m, opt=None, mfu_table=None) -> dict:
  """Batch size one: how many chips one sequence keeps busy at >= 50% efficiency with
  tensor parallelism (Megatron-LM) and pipeline stages (GPipe bubble at m = 1), given
  the link between chips. Data parallelism cannot split one example."""
  from onemodel.plan import model_parallel
  if not (w.model_dim and w.layers):
    return {"chips": 1, "reason": f"{w.name} is not a transformer with a known width and "
            "depth: no tensor-parallel estimate"}
  # No per-chip batch: a calibrated MFU is taken at MFU_max (saturating_mfu's fixed cost
  # per step would weigh on every tensor-parallel split alike; not modelled here).
  speed, _ = planner.chip_speed(w, m, opt or planner.Options(), mfu_table)
  seq = max(w.tokens_per_example, 1.0) if w.unit == "token" else 1.0
  compute = seq / speed                      # one sequence's step on one chip
  link = m.intra if m.intra and m.system.chips_per_node > 1 else m.inter
  got = model_parallel.batch1_chips(compute, seq, w.model_dim, w.layers,
                                    link.bandwidth, link.latency_s)
  got["sequence_tokens"] = seq
  tp, pp = got["tensor_parallel"], got["pipeline_stages"]
  split = " and ".join(
      ([f"each layer's matrices split over {tp} chips (tensor parallel)"] if tp > 1 else [])
      + ([f"the layers cut into {pp} pipeline stages"] if pp > 1 else [])) or \
      "no split pays (one chip)"
  got["reason"] = (f"one sequence of {seq:,.0f} tokens: {split}, at "
                   f"{100 * got['efficiency']:.0f}% efficiency over {link.name}")
  return got

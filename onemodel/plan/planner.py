"""The planner: a workload on N chips of a machine at global batch B -> step time split
into compute, exposed communication and straggler wait, steps to target, time to target.

Per-chip speed comes from a measured throughput (the Paleo way, Qi et al. ICLR 2017: the
planner models scaling, not the single chip) or from peak FLOP/s x an MFU.
"""

import dataclasses
from typing import Optional

from onemodel.errors import UserError
from onemodel.plan import collectives, hardware, stragglers
from onemodel.plan.workloads import Workload

# Communication overlaps the backward pass (2/3 of a step's FLOPs): gradients of late
# layers are all-reduced while earlier layers still back-propagate (Goyal et al. 2017,
# arXiv:1706.02677 sec. 4, "Communication"). Localhost TF runs all-reduce after the
# whole gradient: no overlap.
BACKWARD_SHARE = 2.0 / 3.0
DEFAULT_STEP_CV = 0.03       # assumed per-step spread on dedicated accelerators
DEFAULT_MFU = 0.35           # used only when no calibration or measurement applies
STALENESS_COST = 0.1         # extra steps per unit of staleness (assumption, see async_)


@dataclasses.dataclass
class Options:
  strategy: str = "sync"                 # sync | async
  steps: Optional[float] = None          # steps to target (overrides the workload)
  epochs: Optional[float] = None         # epochs to target (overrides the workload)
  chip_examples_per_sec: Optional[float] = None
  mfu: Optional[float] = None
  step_cv: Optional[float] = None
  overlap: Optional[float] = None        # fraction of compute communication can hide in
  num_ps: int = 1
  staleness_cost: float = STALENESS_COST


def _check(chips, global_batch):
  if not isinstance(chips, int) or chips < 1:
    raise UserError(f"--chips must be a positive integer, got {chips}")
  if not global_batch > 0:
    raise UserError(f"--global_batch must be positive, got {global_batch}")


def saturating_mfu(mfu_max: float, work: float, half_work: float) -> float:
  """MFU at `work` FLOPs per chip per step: MFU_max * w / (w + w_half).

  A chip given little work per step runs below its best rate (kernel launches, host
  round trips, matrices too small to fill the matrix units); the calibration records
  show it: NVIDIA's v0.6 Transformer implies MFU 0.45-0.48 at 10k tokens a V100 and
  0.13-0.18 at 1,280, Google's v0.6 ResNet 0.37 at 256 images a TPU v3 chip and 0.24 at
  32. The form is the same as a fixed cost per step, w_half / (peak x MFU_max) seconds,
  added to the compute time at MFU_max. w = 0 gives 0, w = w_half half of MFU_max, and
  MFU_max is approached as w grows; half_work 0 (or None) switches it off."""
  if not half_work:
    return mfu_max
  if work <= 0 or half_work < 0:
    raise ValueError(f"work {work:g} must be positive and half_work {half_work:g} >= 0")
  return mfu_max * work / (work + half_work)


def table_mfu(mfu_table: dict, accelerator: str, family: str):
  """(MFU_max, where from) from a calibrated table: this accelerator on this workload
  family, else this accelerator on any family, else its nearest calibrated predecessor
  on this family (hardware.Accelerator.predecessor, followed up the line: A100 -> V100,
  TPU v4 -> TPU v3), else the family on any calibrated accelerator, else the mean over
  all records. None if empty.

  Why the predecessor before the family: at equal peak and memory bandwidth (V100 125
  TFLOP/s fp16 and 900 GB/s, TPU v3 123 bf16 and 900) the calibration records' CNN
  MFU_max differ 0.27 against 0.38: the fraction of peak a chip reaches is set by the
  chip and the software that runs it, which the family's mean over all accelerators
  (including fp32 chips without matrix units, P100 0.44 and KNL 0.37) does not carry.
  A chip's predecessor runs the same vendor's implementations (NVIDIA's MXNet/PyTorch
  MLPerf code on V100 and A100, Google's TF/XLA on TPU v3 and v4). Only same-family
  MFU_max is taken from it."""
  if (accelerator, family) in mfu_table:
    return mfu_table[(accelerator, family)], "accelerator+family"
  if accelerator in mfu_table:
    return mfu_table[accelerator], "accelerator"
  seen, pred = {accelerator}, _predecessor(accelerator)
  while pred and pred not in seen:
    if (pred, family) in mfu_table:
      return mfu_table[(pred, family)], f"predecessor {pred}"
    seen.add(pred)
    pred = _predecessor(pred)
  if ("*", family) in mfu_table:
    return mfu_table[("*", family)], "family"
  if "*" in mfu_table:
    return mfu_table["*"], "all records"
  return None, ""


def _predecessor(accelerator: str) -> str:
  acc = hardware.ACCELERATORS.get(accelerator)
  return acc.predecessor if acc else ""


def chip_speed(w: Workload, m: hardware.Machine, opt: Options, mfu_table=None,
               per_chip_batch: Optional[float] = None):
  """(examples/s of one chip, a sentence saying where it came from). With a calibrated
  table and a per-chip batch, the table's MFU_max is lowered by saturating_mfu at this
  per-chip work (without a per-chip batch: MFU_max). A given --mfu is used as it is."""
  if opt.chip_examples_per_sec:
    if opt.chip_examples_per_sec <= 0:
      raise UserError("--chip_examples_per_sec must be positive")
    return opt.chip_examples_per_sec, (f"per-chip speed given: "
                                       f"{opt.chip_examples_per_sec:,.1f} {w.unit}/s")
  local = m.system.name == "this_machine"
  if w.measured and local:
    return w.measured.examples_per_sec, (
        f"per-chip speed measured on this machine: {w.measured.examples_per_sec:,.1f} "
        f"{w.unit}/s ({w.measured.source})")
  peak = hardware.peak(m.system, w.precision)
  mfu, why = opt.mfu, "given"
  # The records calibrate accelerators, not this machine: it gets DEFAULT_MFU.
  if mfu is None and mfu_table and not local:
    mfu_max, where = table_mfu(mfu_table, m.accelerator.name, w.family)
    if mfu_max is not None:
      mfu, why = mfu_max, f"calibrated on the records table ({where})"
      half = mfu_table.get("half_work", 0.0)
      if half and per_chip_batch:
        work = per_chip_batch * w.flops_per_example
        mfu = saturating_mfu(mfu_max, work, half)
        why += (f"; = MFU_max {mfu_max:.3f} x w / (w + w_half) at w = {work:.3g} FLOP "
                f"a chip a step, w_half = {half:.3g}")
  if mfu is None:
    mfu, why = DEFAULT_MFU, "assumed (no calibration for this accelerator)"
  return peak * mfu / w.flops_per_example, (
      f"per-chip speed = {peak / 1e12:.1f} TFLOP/s {w.precision} peak x MFU {mfu:.2f} "
      f"({why}) / {w.flops_per_example:.3g} FLOP per {w.unit}")


def allreduce_s(nbytes: float, chips: int, m: hardware.Machine) -> float:
  s = m.system
  if s.topology == "torus":
    return collectives.torus_allreduce_s(nbytes, chips, s.torus_dims, m.inter.bandwidth,
                                         m.inter.latency_s)
  intra = m.intra or m.inter
  return collectives.hierarchical_allreduce_s(
      nbytes, chips, s.chips_per_node, intra.bandwidth, intra.latency_s,
      m.inter.bandwidth * s.nics_per_node, m.inter.latency_s)


def steps_to_target(w: Workload, batch: float, opt: Options) -> float:
  if opt.steps is not None:
    return opt.steps
  if opt.epochs is not None:
    return opt.epochs * w.step_model.dataset_size / batch
  return w.step_model.steps(batch)


def plan(w: Workload, m: hardware.Machine, chips: int, global_batch: float,
         opt: Optional[Options] = None, mfu_table=None) -> dict:
  """The prediction for one configuration (a JSON-able dict)."""
  opt = opt or Options()
  _check(chips, global_batch)
  if opt.strategy not in ("sync", "async"):
    raise UserError(f"--strategy must be sync or async, got {opt.strategy!r}")
  per_chip = global_batch / chips
  if per_chip < 1:
    raise UserError(f"per-chip batch {per_chip:g} < 1: global batch {global_batch:g} "
                    f"cannot be split over {chips} chips (see 'batch1' for model "
                    f"parallelism)")
  speed, speed_note = chip_speed(w, m, opt, mfu_table, per_chip)
  local = m.system.name == "this_machine"
  overlap = opt.overlap if opt.overlap is not None else (0.0 if local else BACKWARD_SHARE)
  # A spread measured on this machine describes this machine (a shared CPU), not a
  # dedicated accelerator: it is used only when planning for this machine.
  cv = opt.step_cv if opt.step_cv is not None else (
      w.measured.step_cv if local and w.measured and w.measured.step_cv is not None
      else DEFAULT_STEP_CV)
  compute = per_chip / speed
  # Every data-parallel replica applies the full optimizer update each step, a
  # memory-bound pass over the weights and optimizer state that no batch size amortises
  # (Xu et al. 2020, "Automatic cross-replica sharding of weight update in data-parallel
  # training", arXiv:2004.13336 sec. 1).
  hbm = m.accelerator.hbm_bandwidth
  update = w.params * w.update_bytes_per_param / hbm if hbm and not local else 0.0
  assumptions = [speed_note,
                 f"steps: {_steps_note(w, opt)}",
                 f"gradients all-reduced once per step: {w.params:,.0f} parameters x "
                 f"{w.grad_bytes / w.params:.0f} bytes ({w.grad_precision or w.precision})",
                 f"network: {_network_note(m)}",
                 f"per-chip speed as above (a calibrated MFU falls with the per-chip "
                 f"work, saturating_mfu), plus a memory-bound "
                 f"optimizer update of {update * 1e3:.2f} ms a step ({w.params:,.0f} x "
                 f"{w.update_bytes_per_param:g} bytes at the chip's memory bandwidth)"]
  if opt.strategy == "sync":
    comm = allreduce_s(w.grad_bytes, chips, m)
    exposed = max(0.0, comm - overlap * compute)
    strag = stragglers.straggler_wait_s(compute, cv, chips)
    step = compute + update + exposed + strag
    steps = steps_to_target(w, global_batch, opt)
    updates_per_s = 1.0 / step
    assumptions += [f"communication hides behind {overlap:.0%} of compute "
                    f"(backward pass overlap)",
                    f"stragglers: step-time spread cv {cv:.3f}, expected slowest of "
                    f"{chips} (expected maximum of normals)"]
    staleness = 0.0
  else:
    comm = collectives.parameter_server_s(w.grad_bytes, chips, opt.num_ps,
                                          m.inter.bandwidth, m.inter.bandwidth,
                                          m.inter.latency_s)
    exposed, strag = comm, 0.0
    step = compute + update + comm           # one worker's update
    staleness = chips - 1.0                  # expected, workers running in parallel
    steps = steps_to_target(w, per_chip, opt) * (1.0 + opt.staleness_cost * staleness)
    updates_per_s = chips / step
    assumptions += [f"parameter servers: {opt.num_ps}, each with the worker's link; "
                    f"push + pull not overlapped with compute",
                    f"async: each update is one worker's batch of {per_chip:g}; "
                    f"staleness {staleness:g} (workers - 1) costs "
                    f"{opt.staleness_cost:g} x staleness extra steps (assumed; not "
                    f"measured here)"]
  time_s = steps / updates_per_s
  examples_per_s = updates_per_s * (global_batch if opt.strategy == "sync" else per_chip)
  mem = w.params * 16  # fp32 weights + gradients + Adam moments (4 x 4 bytes)
  if m.accelerator.memory_bytes and mem > m.accelerator.memory_bytes:
    assumptions.append(f"weights + Adam state ({mem / 1e9:.1f} GB) exceed one chip's "
                       f"{m.accelerator.memory_bytes / 1e9:.0f} GB: needs model "
                       f"parallelism or sharded optimizer state")
  return {
      "workload": w.name, "hardware": m.system.name, "interconnect": m.inter.name,
      "intra_node": m.intra.name if m.intra else None,
      "chips_per_node": m.system.chips_per_node, "topology": m.system.topology,
      "chips": chips, "global_batch": global_batch, "per_chip_batch": per_chip,
      "strategy": opt.strategy, "time_to_train_s": time_s, "step_time_s": step,
      "compute_s": compute, "optimizer_update_s": update, "communication_s": exposed, "communication_total_s": comm,
      "straggler_s": strag, "throughput_per_sec": examples_per_s,  # in `unit`s
      "scaling_efficiency": examples_per_s / (chips * speed), "steps": steps,
      "staleness": staleness, "chip_examples_per_sec": speed, "unit": w.unit,
      "assumptions": assumptions,
  }


def _steps_note(w, opt):
  if opt.steps is not None:
    return f"{opt.steps:g} steps given"
  if opt.epochs is not None:
    return f"{opt.epochs:g} epochs given of {w.step_model.dataset_size:,.0f} {w.unit}s"
  return w.step_model.describe()


def _network_note(m):
  s = m.system
  if s.topology == "torus":
    return f"{s.torus_dims}-D torus, {m.inter.bandwidth / 1e9:.0f} GB/s per chip " \
           f"all-reduce bandwidth ({m.inter.source})"
  intra = f"{s.chips_per_node} chips/node over {m.intra.name}, " if m.intra else ""
  return f"{intra}{s.nics_per_node} x {m.inter.name} per node " \
         f"({m.inter.bandwidth * 8 / 1e9:.0f} Gbit/s each), ring all-reduce"

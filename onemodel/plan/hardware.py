"""Accelerators, links and systems as data, each number with its public source.

A *system* is what `onemodel-plan --hardware=NAME` names: an accelerator, how many of
them share a node, the link inside a node, the network between nodes and the topology
the all-reduce runs on. `--interconnect=NAME` swaps the network between nodes (or, for a
torus system, the torus links).

Bandwidths are bytes/s in ONE direction per endpoint (a datasheet's "bidirectional"
figure is halved); a node's network bandwidth is the sum over its NICs.
"""

import dataclasses
from typing import Dict, Optional

from onemodel.errors import UserError

GB = 1e9
TFLOPS = 1e12


@dataclasses.dataclass(frozen=True)
class Accelerator:
  name: str
  peak_flops: Dict[str, float]   # precision -> FLOP/s (dense)
  memory_bytes: float
  source: str
  hbm_bandwidth: float = 0.0     # bytes/s of device memory (0: unknown)
  # The calibrated accelerator whose MFU_max this one takes for a workload family it has
  # no record of (planner.table_mfu): its predecessor in the same vendor's line, run by
  # the same vendor's software in 16-bit matrix math ('' : none; see table_mfu).
  predecessor: str = ""


@dataclasses.dataclass(frozen=True)
class Link:
  name: str
  bandwidth: float               # bytes/s, one direction, per endpoint
  latency_s: float
  source: str


@dataclasses.dataclass(frozen=True)
class System:
  name: str
  accelerator: str
  chips_per_node: int
  intra: Optional[str]           # link inside a node (None: one chip per node)
  inter: str                     # network between nodes, or the torus link
  nics_per_node: int = 1
  topology: str = "hierarchical"  # hierarchical | torus
  torus_dims: int = 2
  source: str = ""


ACCELERATORS = {a.name: a for a in [
    Accelerator("p100", {"fp32": 10.6 * TFLOPS, "fp16": 21.2 * TFLOPS}, 16 * GB,
                "NVIDIA Tesla P100 (SXM2) datasheet: 10.6 TFLOP/s fp32, 21.2 fp16, 16 GB, "
                "732 GB/s", 732 * GB),
    Accelerator("p40", {"fp32": 12.0 * TFLOPS}, 24 * GB,
                "NVIDIA Tesla P40 datasheet: 12 TFLOP/s fp32, 24 GB, 346 GB/s", 346 * GB),
    Accelerator("v100", {"fp32": 15.7 * TFLOPS, "fp16": 125.0 * TFLOPS}, 32 * GB,
                "NVIDIA Tesla V100 (SXM2) datasheet: 15.7 TFLOP/s fp32, 125 tensor fp16, "
                "900 GB/s", 900 * GB),
    Accelerator("a100", {"fp32": 19.5 * TFLOPS, "tf32": 156.0 * TFLOPS,
                         "fp16": 312.0 * TFLOPS, "bf16": 312.0 * TFLOPS}, 80 * GB,
                "NVIDIA A100 (SXM4 80GB) datasheet: 19.5 fp32, 156 tf32, 312 bf16/fp16 "
                "dense TFLOP/s (624 only with 2:4 sparsity), 80 GB HBM2e, 2039 GB/s",
                2039 * GB, predecessor="v100"),
    # MLPerf v0.7's DGX A100 and some later systems use the 40 GB part (their system
    # descriptions: "NVIDIA A100-SXM4-40GB"): the same peaks, slower memory.
    Accelerator("a100_40gb", {"fp32": 19.5 * TFLOPS, "tf32": 156.0 * TFLOPS,
                              "fp16": 312.0 * TFLOPS, "bf16": 312.0 * TFLOPS}, 40 * GB,
                "NVIDIA A100 (SXM4 40GB) datasheet: the same TFLOP/s as the 80 GB part, "
                "40 GB HBM2, 1555 GB/s", 1555 * GB, predecessor="a100"),
    Accelerator("h100", {"fp32": 67.0 * TFLOPS, "tf32": 494.0 * TFLOPS,
                         "fp16": 989.0 * TFLOPS, "bf16": 989.0 * TFLOPS}, 80 * GB,
                "NVIDIA H100 (SXM5) datasheet: 67 fp32, 989 bf16 dense TFLOP/s, 80 GB, "
                "3.35 TB/s", 3350 * GB, predecessor="a100"),
    Accelerator("tpu_v2", {"bf16": 45.0 * TFLOPS, "fp16": 45.0 * TFLOPS}, 16 * GB,
                "Jouppi et al. 2020, 'A domain-specific supercomputer for training DNNs', "
                "CACM 63(7): TPUv2 45 TFLOP/s bf16, 16 GiB HBM (700 GB/s) per chip",
                700 * GB),
    Accelerator("tpu_v3", {"bf16": 123.0 * TFLOPS, "fp16": 123.0 * TFLOPS}, 32 * GB,
                "Cloud TPU v3 docs (cloud.google.com/tpu/docs/v3): 123 TFLOP/s bf16, "
                "32 GiB HBM at 900 GB/s per chip (a chip has 2 cores)", 900 * GB,
                predecessor="tpu_v2"),
    Accelerator("tpu_v4", {"bf16": 275.0 * TFLOPS, "fp16": 275.0 * TFLOPS}, 32 * GB,
                "Cloud TPU v4 docs (cloud.google.com/tpu/docs/v4): 275 TFLOP/s bf16, "
                "32 GiB HBM at 1200 GB/s per chip", 1200 * GB, predecessor="tpu_v3"),
    # 68 cores x 1.4 GHz x 2 AVX-512 units x 16 fp32 lanes x 2 (FMA) = 6.1 TFLOP/s.
    Accelerator("knl", {"fp32": 6.09 * TFLOPS}, 16 * GB,
                "Intel Xeon Phi 7250 (ark.intel.com): 68 cores, 1.4 GHz, 2 AVX-512 FMA "
                "units per core -> 6.1 TFLOP/s fp32; 16 GB MCDRAM (> 400 GB/s)", 400 * GB),
]}

LINKS = {l.name: l for l in [
    Link("pcie3", 15.75 * GB, 5e-6, "PCI-SIG PCIe 3.0 x16: 15.75 GB/s per direction"),
    Link("nvlink1", 80 * GB, 5e-6, "NVIDIA P100 datasheet: NVLink 160 GB/s bidirectional "
         "(4 links x 20 GB/s per direction)"),
    Link("nvlink2", 150 * GB, 5e-6, "NVIDIA V100 datasheet: NVLink 300 GB/s bidirectional"),
    Link("nvswitch", 150 * GB, 5e-6, "NVIDIA DGX-2 datasheet: NVSwitch, 300 GB/s "
         "bidirectional per V100 to every other GPU"),
    Link("nvlink3", 300 * GB, 5e-6, "NVIDIA A100 datasheet: NVLink 600 GB/s bidirectional"),
    Link("nvlink4", 450 * GB, 5e-6, "NVIDIA H100 datasheet: NVLink 900 GB/s bidirectional"),
    Link("ib_fdr", 56e9 / 8, 1.5e-6, "InfiniBand FDR 4x: 56 Gbit/s (Mellanox ConnectX-3)"),
    Link("ib_edr", 100e9 / 8, 1.5e-6, "InfiniBand EDR 4x: 100 Gbit/s (Mellanox ConnectX-4)"),
    Link("ib_hdr", 200e9 / 8, 1.5e-6, "InfiniBand HDR 4x: 200 Gbit/s (Mellanox ConnectX-6)"),
    Link("ib_ndr", 400e9 / 8, 1.5e-6, "InfiniBand NDR 4x: 400 Gbit/s (NVIDIA ConnectX-7)"),
    Link("omnipath", 100e9 / 8, 1.5e-6, "Intel Omni-Path 100 Gbit/s (Stampede2's KNL fabric)"),
    Link("loopback", 1.0e9, 50e-6, "measured here: TCP over loopback, 0.9-3.3 GB/s in two "
         "runs of a 200 MB Python socket transfer on the shared 2-core machine (lower kept)"),
    Link("ethernet_100m", 100e6 / 8, 100e-6, "100 Mbit/s Ethernet (a tc tbf rate here)"),
    Link("ethernet_1g", 1e9 / 8, 50e-6, "1 Gbit/s Ethernet (a tc tbf rate here)"),
    Link("ethernet_10g", 10e9 / 8, 30e-6, "IEEE 802.3 10 Gbit/s Ethernet; ~30 us TCP latency"),
    Link("ethernet_50g", 50e9 / 8, 10e-6, "50 Gbit/s Ethernet (Goyal et al. 2017, "
         "arXiv:1706.02677 sec. 5: Big Basin servers, Mellanox ConnectX-4 50GbE)"),
    Link("ethernet_100g", 100e9 / 8, 10e-6, "IEEE 802.3 100 Gbit/s Ethernet"),
    # Per-chip all-reduce bandwidth = the pod's "all-reduce bandwidth" / its chips.
    Link("tpu_v3_ici", 340e12 / 1024, 2e-6, "Cloud TPU v3 docs: all-reduce bandwidth "
         "340 TB/s per 1024-chip pod (2-D torus) -> 332 GB/s per chip"),
    Link("tpu_v4_ici", 1.1e15 / 4096, 2e-6, "Cloud TPU v4 docs: all-reduce bandwidth "
         "1.1 PB/s per 4096-chip pod (3-D torus) -> 269 GB/s per chip"),
    Link("tpu_v2_ici", 4 * 496e9 / 8 / 2, 2e-6, "Jouppi et al. 2020 (CACM 63(7)): TPUv2 ICI "
         "4 links x 496 Gbit/s; halved for one direction"),
]}

SYSTEMS = {s.name: s for s in [
    System("p100", "p100", 8, "nvlink1", "ib_edr", 4, source="NVIDIA DGX-1 (P100) "
           "datasheet: 8 GPUs, NVLink hybrid cube mesh, 4x IB EDR"),
    System("p40", "p40", 8, "pcie3", "ethernet_100g", 1, source="8x P40 PCIe server with "
           "one 100GbE NIC (generic; no single vendor system)"),
    System("v100", "v100", 8, "nvlink2", "ib_edr", 4, source="NVIDIA DGX-1 (V100) "
           "datasheet: 8 GPUs, NVLink, 4x IB EDR"),
    System("v100_dgx2", "v100", 16, "nvswitch", "ib_edr", 8, source="NVIDIA DGX-2H "
           "datasheet: 16 V100, NVSwitch, 8x IB EDR"),
    System("a100", "a100", 8, "nvlink3", "ib_hdr", 8, source="NVIDIA DGX A100 "
           "datasheet: 8 A100, NVSwitch, 8x HDR 200 Gbit/s"),
    System("a100_40gb", "a100_40gb", 8, "nvlink3", "ib_hdr", 8, source="NVIDIA DGX A100 "
           "(40 GB) datasheet: 8 A100-SXM4-40GB, NVSwitch, 8x HDR 200 Gbit/s"),
    # HGX A100 4-GPU servers (MLPerf v1.1 system descriptions: Dell PowerEdge XE8545 with
    # 2x ConnectX-6 HDR, Lenovo SD650-N V2 / SR670 V2, Supermicro AS-2124GQ-NART+): 4
    # A100-SXM4 joined by NVLink 3 (each GPU's 12 links split over its 3 peers).
    System("a100_x4", "a100", 4, "nvlink3", "ib_hdr", 2, source="HGX A100 4-GPU server "
           "(e.g. Dell PowerEdge XE8545): 4 A100-SXM4-80GB, NVLink 3, 2x HDR 200 Gbit/s"),
    System("a100_40gb_x4", "a100_40gb", 4, "nvlink3", "ib_hdr", 2, source="HGX A100 "
           "4-GPU server (Dell PowerEdge XE8545): 4 A100-SXM4-40GB, NVLink 3, 2x HDR"),
    System("h100", "h100", 8, "nvlink4", "ib_ndr", 8, source="NVIDIA DGX H100 "
           "datasheet: 8 H100, NVSwitch, 8x NDR 400 Gbit/s"),
    System("tpu_v2", "tpu_v2", 4, None, "tpu_v2_ici", 1, "torus", 2,
           "Jouppi et al. 2020 (CACM): 256-chip TPUv2 pod, 2-D torus"),
    System("tpu_v3", "tpu_v3", 4, None, "tpu_v3_ici", 1, "torus", 2,
           "Cloud TPU v3 docs: 1024-chip pod, 2-D torus"),
    System("tpu_v4", "tpu_v4", 4, None, "tpu_v4_ici", 1, "torus", 3,
           "Cloud TPU v4 docs: 4096-chip pod, 3-D torus"),
    System("knl", "knl", 1, None, "omnipath", 1, source="TACC Stampede2 KNL nodes: one "
           "Xeon Phi 7250 per node, Omni-Path 100 Gbit/s"),
    # Systems of single records (their sources are in the records table).
    System("p100_bigbasin", "p100", 8, "nvlink1", "ethernet_50g", 1,
           source="Goyal et al. 2017 (arXiv:1706.02677) sec. 5: Big Basin, 8 P100, 50GbE"),
    System("p100_mn1", "p100", 8, "pcie3", "ib_fdr", 2, source="Preferred Networks MN-1 "
           "(tech.preferred.jp blog, 2017-11): 8 P100 PCIe per node, 2x IB FDR"),
    System("v100_abci", "v100", 4, "nvlink2", "ib_edr", 2, source="ABCI system overview "
           "(abci.ai): 4 V100 SXM2 per node, 2x IB EDR"),
]}


def _unknown(kind, name, known):
  import difflib
  close = difflib.get_close_matches(name, known, n=3)
  hint = f" (did you mean {', '.join(close)}?)" if close else ""
  return UserError(f"unknown {kind} {name!r}{hint}; known: {', '.join(sorted(known))}")


def system(name: str) -> System:
  if name not in SYSTEMS:
    raise _unknown("hardware", name, SYSTEMS)
  return SYSTEMS[name]


def link(name: str) -> Link:
  if name not in LINKS:
    raise _unknown("interconnect", name, LINKS)
  return LINKS[name]


def accelerator(name: str) -> Accelerator:
  if name not in ACCELERATORS:
    raise _unknown("accelerator", name, ACCELERATORS)
  return ACCELERATORS[name]


def peak(system_: System, precision: str) -> float:
  """The accelerator's peak FLOP/s at `precision`, falling back to fp32 (a chip without
  16-bit matrix units, e.g. P40 or KNL, runs it at its fp32 rate)."""
  acc = accelerator(system_.accelerator)
  if precision in acc.peak_flops:
    return acc.peak_flops[precision]
  # A 16-bit request runs at the chip's other 16-bit format (V100 has fp16 tensor cores
  # but no bf16; mixed precision on it means fp16).
  for half in ("fp16", "bf16"):
    if precision in ("fp16", "bf16") and half in acc.peak_flops:
      return acc.peak_flops[half]
  return acc.peak_flops.get("fp32", max(acc.peak_flops.values()))


@dataclasses.dataclass(frozen=True)
class Machine:
  """A system with its links resolved (what the calculators take)."""
  system: System
  accelerator: Accelerator
  intra: Optional[Link]
  inter: Link


def machine(hardware: str, interconnect: str = "") -> Machine:
  s = system(hardware)
  return Machine(s, accelerator(s.accelerator), link(s.intra) if s.intra else None,
                 link(interconnect or s.inter))


def local_machine(peak_flops: float, inter: Link, cores_note: str = "") -> Machine:
  """This machine as one 'chip' (its measured fp32 matmul peak), workers joined by
  `inter` (loopback or a shaped veth link)."""
  acc = Accelerator("this_machine", {"fp32": peak_flops}, 0.0,
                    f"measured here: fp32 matmul peak {peak_flops / 1e9:.0f} GFLOP/s "
                    f"(onemodel.throughput){cores_note}")
  return Machine(System("this_machine", "this_machine", 1, None, inter.name), acc, None,
                 inter)

"""The published time-to-train records (records.csv next to this file), each read in its
source: a paper (arXiv id, section) or an MLPerf result log (run_start -> run_stop;
MLPerf excludes initialization, and its TPU system names count cores, not chips).

Roles: `calibration` records may be fitted on; `validation` records never are;
`unscored` records lack a number the planner needs and are listed, not predicted.
"""

import csv
import dataclasses
import os
from typing import List, Optional

from onemodel.plan import hardware, planner
from onemodel.plan import workloads as workloads_lib

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "records.csv")


@dataclasses.dataclass(frozen=True)
class Record:
  id: str
  role: str
  source: str
  workload: str
  dataset: str
  target: str
  system: str
  chips: int
  interconnect: str
  precision: str
  grad_precision: str
  global_batch: Optional[float]
  epochs: Optional[float]
  steps: Optional[float]
  reported_s: float
  includes: str
  reported_scaling: str

  @property
  def scored(self) -> bool:
    return self.role != "unscored" and self.global_batch is not None and \
        (self.epochs is not None or self.steps is not None)

  def workload_obj(self) -> workloads_lib.Workload:
    w = workloads_lib.reference(self.workload)
    return dataclasses.replace(w, precision=self.precision,
                               grad_precision=self.grad_precision)

  def machine(self) -> hardware.Machine:
    return hardware.machine(self.system, self.interconnect)

  def options(self, mfu: Optional[float] = None) -> planner.Options:
    return planner.Options(strategy="sync", steps=self.steps, epochs=self.epochs, mfu=mfu)

  def predict(self, mfu: float) -> dict:
    return planner.plan(self.workload_obj(), self.machine(), self.chips,
                        self.global_batch, self.options(mfu))


def _num(x: str) -> Optional[float]:
  return float(x) if x.strip() else None


def load(path: str = PATH) -> List[Record]:
  out = []
  with open(path, newline="") as f:
    for row in csv.DictReader(f):
      out.append(Record(
          id=row["id"], role=row["role"], source=row["source"], workload=row["workload"],
          dataset=row["dataset"], target=row["target"], system=row["system"], chips=int(row["chips"]),
          interconnect=row["interconnect"], precision=row["precision"],
          grad_precision=row["grad_precision"], global_batch=_num(row["global_batch"]),
          epochs=_num(row["epochs"]), steps=_num(row["steps"]),
          reported_s=float(row["reported_s"]), includes=row["includes"],
          reported_scaling=row["reported_scaling"]))
  return out

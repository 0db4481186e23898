r"""onemodel-plan: time to train on N chips, sync vs async, from a run measured here or a
reference workload.

  onemodel-plan --workload=runs/multi30k_en_de --hardware=tpu_v3 --chips=256 \
      --global_batch=262144
  onemodel-plan --workload=resnet50_imagenet --hardware=v100 --chips=512 \
      --global_batch=32768 --format=json
  onemodel-plan --list
"""

import dataclasses
import json
import os

from absl import flags

from onemodel.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string("workload", "", "A onemodel run directory or a reference workload.")
flags.DEFINE_string("hardware", "", "A system (see --list); 'this_machine' = this CPU.")
flags.DEFINE_integer("chips", 1, "Number of chips (accelerators; workers on this_machine).")
flags.DEFINE_float("global_batch", None, "Global batch, in the workload's unit: examples, "
                   "or tokens for a run measured in tokens (the header says which).")
flags.DEFINE_enum("strategy", "sync", ["sync", "async"],
                  "sync: all-reduce (multi-worker); async: parameter servers.")
flags.DEFINE_float("epochs", None, "Epochs to target (overrides the workload's).")
flags.DEFINE_float("steps", None, "Steps to target (overrides the workload's).")
flags.DEFINE_float("chip_examples_per_sec", None, "Measured single-chip throughput.")
flags.DEFINE_float("mfu", None, "MFU to assume (default: calibrated on the records).")
flags.DEFINE_string("interconnect", "", "Replace the system's network (see --list).")
flags.DEFINE_integer("num_ps", 1, "Parameter servers (--strategy=async).")
flags.DEFINE_enum("format", "table", ["table", "json"], "Output format.")
flags.DEFINE_string("plot", "", "Write time-to-target vs chips (PNG) with the records.")
flags.DEFINE_bool("list", False, "List known workloads, hardware and interconnects.")


def _list():
  from onemodel.plan import hardware, workloads
  print("workloads (or a onemodel run directory):")
  for w in workloads.REFERENCE.values():
    print(f"  {w.name:24s} {w.flops_per_example:.3g} FLOP/{w.unit}, {w.params / 1e6:.0f}M "
          f"params; {w.source}")
  print("hardware:")
  for s in hardware.SYSTEMS.values():
    print(f"  {s.name:16s} {s.source}")
  print("  this_machine     this CPU as one chip (needs a run directory or "
        "--chip_examples_per_sec)")
  print("interconnects:")
  for l in hardware.LINKS.values():
    print(f"  {l.name:14s} {l.bandwidth * 8 / 1e9:8.2f} Gbit/s  {l.source}")


def _workload():
  from onemodel.plan import rundir, workloads
  name = FLAGS.workload
  if not name:
    raise common.UserError("--workload is required (a run directory or one of --list)")
  if os.path.sep in name or os.path.isdir(name):
    if not os.path.isdir(name):
      raise common.UserError(f"--workload {name}: no such run directory")
    return rundir.load(name)
  return workloads.reference(name)


def _machine(w):
  from onemodel.plan import hardware
  if FLAGS.hardware == "this_machine":
    peak = w.measured.peak_flops if w.measured and w.measured.peak_flops else 0.0
    if not (w.measured or FLAGS.chip_examples_per_sec):
      raise common.UserError("--hardware=this_machine needs a run directory measured "
                             "here or --chip_examples_per_sec")
    return hardware.local_machine(peak, hardware.link(FLAGS.interconnect or "loopback"))
  if not FLAGS.hardware:
    raise common.UserError("--hardware is required (see --list)")
  return hardware.machine(FLAGS.hardware, FLAGS.interconnect)


def main(argv):
  del argv
  if FLAGS.list:
    return _list()
  from onemodel.plan import calibrate, planner, records, scaling
  if FLAGS.epochs is not None and FLAGS.steps is not None:
    raise common.UserError("give --epochs or --steps, not both")
  if FLAGS.chips is None or FLAGS.chips < 1:
    raise common.UserError(f"--chips must be a positive integer, got {FLAGS.chips}")
  for name in ("epochs", "steps", "chip_examples_per_sec", "mfu"):
    v = getattr(FLAGS, name)
    if v is not None and not v > 0:
      raise common.UserError(f"--{name} must be positive, got {v:g}")
  w = _workload()
  recs = records.load()
  fitted = calibrate.fit_step_models(recs)
  if w.name in fitted:
    w = dataclasses.replace(w, step_model=fitted[w.name])
  m = _machine(w)
  batch = FLAGS.global_batch
  if batch is None:
    batch = w.measured.batch * FLAGS.chips if w.measured else None
  if batch is None:
    raise common.UserError("--global_batch is required for a reference workload")
  opt = planner.Options(strategy=FLAGS.strategy, steps=FLAGS.steps, epochs=FLAGS.epochs,
                        chip_examples_per_sec=FLAGS.chip_examples_per_sec, mfu=FLAGS.mfu,
                        num_ps=FLAGS.num_ps)
  table = calibrate.mfu_table(recs)
  result = planner.plan(w, m, FLAGS.chips, batch, opt, table)
  result["limits"] = scaling.limits(w, m, FLAGS.chips, batch, opt, table)
  result["sync_vs_async"] = scaling.sync_vs_async(w, m, FLAGS.chips, batch, opt, table)
  result["batch1"] = scaling.batch1(w, m, opt, table)
  if FLAGS.plot:
    _plot(w, m, batch, opt, table, recs)
    result["plot"] = FLAGS.plot
  if FLAGS.format == "json":
    print(json.dumps(result, indent=2, default=str))
  else:
    _print_table(result)


def _plot(w, m, batch, opt, table, recs):
  from onemodel.plan import calibrate, plot, scaling
  per_chip = batch / FLAGS.chips
  curves = []
  for strat, ls in (("sync", "-"), ("async", "--")):
    rows = scaling.sweep(w, m, per_chip_batch=per_chip,
                         opt=dataclasses.replace(opt, strategy=strat), mfu_table=table,
                         max_chips=4096)
    curves.append({"label": f"{w.name} on {m.system.name}, {strat}, {per_chip:g} "
                            f"{w.unit}s/chip", "chips": [r["chips"] for r in rows],
                   "time_s": [r["time_to_train_s"] for r in rows], "ls": ls})
  pts = [(x["record"].id, x["record"].chips, x["record"].reported_s, x["predicted_s"],
          x["record"].workload) for x in calibrate.leave_one_out(recs)
         if x["predicted_s"] is not None]
  plot.plot(FLAGS.plot, curves, pts, title=f"{w.name}: time to target vs chips "
            f"(weak scaling); published records (MLPerf v0.6/v0.7, papers)")


def _fmt_s(s):
  if s >= 86400:
    return f"{s / 86400:.1f} d"
  if s >= 3600:
    return f"{s / 3600:.1f} h"
  if s >= 60:
    return f"{s / 60:.1f} min"
  return f"{s:.2f} s" if s >= 1 else f"{s * 1e3:.2f} ms"


def _where(r) -> str:
  """The links the chips use: inside one node its own link, else the nodes' network."""
  if r["topology"] == "torus" or not r["intra_node"]:
    return r["interconnect"]
  if r["chips"] <= r["chips_per_node"]:
    return f"one node, {r['intra_node']}"
  nodes = -(-r["chips"] // r["chips_per_node"])
  return f"{nodes} nodes over {r['interconnect']}, {r['intra_node']} inside each"


def _print_table(r):
  lines = [
      f"{r['workload']} on {r['chips']} x {r['hardware']} ({_where(r)}), "
      f"{r['strategy']}, global batch {r['global_batch']:,.0f} {r['unit']}s "
      f"({r['per_chip_batch']:,.1f} a chip)",
      f"  time to target   {_fmt_s(r['time_to_train_s'])}  ({r['steps']:,.0f} steps)",
      f"  step time        {_fmt_s(r['step_time_s'])} = compute {_fmt_s(r['compute_s'])}"
      f" + update {_fmt_s(r['optimizer_update_s'])} + exposed communication "
      f"{_fmt_s(r['communication_s'])} (of {_fmt_s(r['communication_total_s'])}) + "
      f"stragglers {_fmt_s(r['straggler_s'])}",
      f"  throughput       {r['throughput_per_sec']:,.0f} {r['unit']}s/s, scaling "
      f"efficiency {100 * r['scaling_efficiency']:.0f}%",
      f"  sync vs async    sync {_fmt_s(r['sync_vs_async']['sync_s'])}, async "
      f"{_fmt_s(r['sync_vs_async']['async_s'])}: {r['sync_vs_async']['why']}",
  ]
  for k in ("weak_scaling", "strong_scaling"):
    lim = r["limits"][k]
    if lim["chips"] is None:
      lines.append(f"  {k.replace('_', ' '):16s} {lim['reason']}")
      continue
    lines.append(f"  {k.replace('_', ' '):16s} stops paying past {lim['chips']} "
                 f"chip{'s' if lim['chips'] > 1 else ''} "
                 f"(batch {lim['global_batch']:,.0f}): {lim['reason']}")
  lines.append(f"  batch size one    {r['batch1']['chips']} chips at >= 50% efficiency: "
               f"{r['batch1']['reason']}")
  lines.append("  assumptions:")
  lines += [f"    - {a}" for a in r["assumptions"]]
  print("\n".join(lines))


def run():
  common.run(main)


if __name__ == "__main__":
  run()

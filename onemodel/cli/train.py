r"""onemodel-train: train (and evaluate) one problem or a mixture; re-running resumes.

  onemodel-train --gin_file=gin/experiments/mnist.gin --output_dir=/tmp/mnist \
      --manual_dir=../shared/data
"""

from absl import flags

from onemodel.cli import common

FLAGS = flags.FLAGS
common.define_gin_flags()
common.define_dir_flags()
flags.DEFINE_string("output_dir", None, "Checkpoints, configs, summaries and metrics.")
flags.DEFINE_string("strategy", "", "one_device | mirrored | multi_worker | "
                    "parameter_server | tpu (default: one_device or mirrored from devices).")
flags.DEFINE_string("tpu", "", "TPU name or grpc:// address (implies --strategy=tpu).")


def main(argv):
  del argv
  from onemodel import distribute
  if distribute.serve_if_server_task(FLAGS.strategy):
    return  # a parameter-server cluster's worker or ps: it only hosts variables/ops
  common.load_plugins()
  common.parse_gin(FLAGS.gin_file, FLAGS.gin_param)
  import gin
  from onemodel import adapters
  from onemodel import backbone
  from onemodel import trainer
  if not FLAGS.output_dir:
    raise common.UserError("--output_dir is required")
  # gin is read here, at the edge; the library gets values.
  cfg, backbone_cfg = trainer.TrainConfig(), backbone.BackboneConfig()
  modality_cfg = adapters.ModalityConfigs.from_gin()
  t = trainer.Trainer(FLAGS.output_dir, FLAGS.data_dir, FLAGS.manual_dir,
                      strategy=distribute.get_strategy(FLAGS.strategy, FLAGS.tpu),
                      cfg=cfg, backbone_cfg=backbone_cfg, modality_cfg=modality_cfg)
  out = t.train(config_text=gin.config_str(), operative_config=gin.operative_config_str)
  if out["eval"] and len(t.problems) > 1:
    print(summary_table(t, out["eval"]), flush=True)
  shown = examples_text(t) if out["eval"] else ""
  if shown:
    print(shown, flush=True)


def summary_table(t, results) -> str:
  """One line per problem of a joint run: its first metric and the steps it trained."""
  steps = t.problem_steps.numpy().tolist()
  rows = [("problem", "metric", t.cfg.final_eval_role, "its steps")]
  for p, n in zip(t.problems, steps):
    metric = p.metrics[0]
    rows.append((p.name, metric, f"{results[p.name][metric]:.4g}", str(int(n))))
  widths = [max(len(r[i]) for r in rows) for i in range(4)]
  return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def examples_text(t) -> str:
  """The final evaluation's first examples of each problem: what the metrics mean."""
  lines = [f"first {t.cfg.final_eval_role} examples:"]
  for p in t.problems:
    for e in t.examples.get(p.name, []):
      source = f"{e.source!r} -> " if e.source is not None else ""
      lines.append(f"  {p.name}: {source}{e.output!r} (reference {e.reference!r})")
  return "\n".join(lines) if len(lines) > 1 else ""


def run():
  common.run(main)


if __name__ == "__main__":
  run()

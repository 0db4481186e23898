"""onemodel-train: train (and evaluate) one problem; re-running resumes.

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
  from onemodel import trainer
  if not FLAGS.output_dir:
    raise common.UserError("--output_dir is required")
  t = trainer.Trainer(FLAGS.output_dir, FLAGS.data_dir, FLAGS.manual_dir,
                      strategy=distribute.get_strategy(FLAGS.strategy, FLAGS.tpu))
  from onemodel import plugins
  if t.is_chief:  # later commands on the run find its plugins
    plugins.write_record(FLAGS.output_dir)
  t.train()


def run():
  common.run(main)


if __name__ == "__main__":
  run()

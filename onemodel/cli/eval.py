"""onemodel-eval: restore a run's checkpoint and report its problem's metrics.

  onemodel-eval --output_dir=/tmp/mnist [--split=test] [--checkpoint=PATH]

Rebuilds the model from OUTPUT_DIR/config.gin (written by onemodel-train); metrics go to
stdout, OUTPUT_DIR/metrics_SPLIT_stepN.json and TensorBoard (OUTPUT_DIR/eval)."""

import json
import os

from absl import flags

from onemodel.cli import common
from onemodel.errors import UserError

FLAGS = flags.FLAGS
common.define_gin_flags()
common.define_dir_flags()
flags.DEFINE_string("output_dir", None, "The training run's output dir.")
flags.DEFINE_string("checkpoint", "", "A checkpoint path (default: the latest in the run).")
flags.DEFINE_string("split", "test", "Split role: train, eval or test.")


def main(argv):
  del argv
  common.load_plugins()
  out = FLAGS.output_dir
  if not out or not os.path.isdir(out):
    raise UserError(f"--output_dir {out} is not a training run directory")
  config = os.path.join(out, "config.gin")
  if not os.path.isfile(config):
    raise UserError(f"{config} not found: is {out} an onemodel-train output dir?")
  common.parse_gin([config] + FLAGS.gin_file, FLAGS.gin_param)
  import tensorflow as tf
  from onemodel import trainer
  t = trainer.Trainer(out, FLAGS.data_dir, FLAGS.manual_dir)
  path = FLAGS.checkpoint or t.manager.latest_checkpoint
  if not path:
    raise UserError(f"no checkpoint in {os.path.join(out, 'checkpoints')}")
  if not tf.io.gfile.exists(path + ".index"):
    raise UserError(f"checkpoint {path} does not exist")
  iterator = iter(t.strategy.distribute_datasets_from_function(t._dataset))
  t._build_variables(iterator)
  trainer.restore_or_init(t.checkpoint, t.manager, path)
  step = int(t.step.numpy())
  writer = tf.summary.create_file_writer(os.path.join(out, "eval"))
  results = t.evaluate(FLAGS.split, step, writer)
  print(json.dumps({"problem": t.problem.name, "split": FLAGS.split, "step": step,
                    "checkpoint": path, "metrics": results}, sort_keys=True))


def run():
  common.run(main)


if __name__ == "__main__":
  run()

"""onemodel-eval: restore a run's checkpoint and report its problem's metrics.

  onemodel-eval --output_dir=/tmp/mnist [--split=test] [--checkpoint=PATH]
      [--gin_param="DecodeConfig.method='beam'"]

Rebuilds the model from OUTPUT_DIR/config.gin (written by onemodel-train); metrics go to
stdout, OUTPUT_DIR/metrics_SPLIT_stepN.json and TensorBoard (OUTPUT_DIR/eval). Decoding
follows DecodeConfig (greedy by default). `--checkpoint` may name an averaged checkpoint
(onemodel-average)."""

import json
import os

from absl import flags

from onemodel.cli import common

FLAGS = flags.FLAGS
common.define_gin_flags()
common.define_dir_flags()
common.define_run_flags()
flags.DEFINE_string("split", "test", "Split role: train, eval or test.")


def main(argv):
  del argv
  t, path = common.load_run()
  import tensorflow as tf
  step = int(t.step.numpy())
  writer = tf.summary.create_file_writer(os.path.join(FLAGS.output_dir, "eval"))
  # A checkpoint from outside the run's checkpoints/ (e.g. averaged/) gets its own
  # metrics file instead of overwriting the one of the same step.
  where = os.path.basename(os.path.dirname(os.path.abspath(path)))
  results = t.evaluate(FLAGS.split, step, writer, tag="" if where == "checkpoints" else where)
  # A joint (mixture) run reports every problem: {"metrics": {problem: {...}}}.
  print(json.dumps({"problem": t.name, "split": FLAGS.split, "step": step,
                    "checkpoint": path, "metrics": results}, sort_keys=True))


def run():
  common.run(main)


if __name__ == "__main__":
  run()

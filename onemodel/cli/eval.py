"""onemodel-eval: restore a run's checkpoint and report its problem's metrics.

  onemodel-eval --output_dir=/tmp/mnist [--split=test] [--checkpoint=PATH|best]
      [--gin_param="DecodeConfig.method='beam'"]
  onemodel-eval --output_dir=/tmp/mnist --follow   # beside a running onemodel-train

Rebuilds the model from OUTPUT_DIR/config.gin (written by onemodel-train); metrics go to
stdout, OUTPUT_DIR/metrics_SPLIT_stepN.json and TensorBoard (OUTPUT_DIR/eval). Decoding
follows DecodeConfig (greedy by default). `--checkpoint` may name an averaged checkpoint
(onemodel-average); `--checkpoint=best` the one kept by TrainConfig.select or --follow.

`--follow` evaluates every checkpoint of the run as the trainer writes it (on the
validation split unless --split is given) and ends after the trainer's final step; see
onemodel/follow.py."""

import json
import os

from absl import flags

from onemodel.cli import common
from onemodel.errors import UserError

FLAGS = flags.FLAGS
common.define_gin_flags()
common.define_dir_flags()
common.define_run_flags()
flags.DEFINE_string("split", "test", "Split role: train, eval or test (with --follow: eval).")
flags.DEFINE_bool("follow", False, "Evaluate each new checkpoint of a (running) training run "
                  "until its final step; keep the best in OUTPUT_DIR/checkpoints/best.")
flags.DEFINE_integer("follow_timeout_s", 3600, "With --follow: give up (non-zero exit) after "
                     "this many seconds without a new checkpoint.")
flags.DEFINE_string("select", "", "With --follow: 'PROBLEM/METRIC', 'METRIC' or 'mean_rank' "
                    "(default: the first metric of the problem, or mean_rank for a joint run).")


def follow_run():
  from onemodel import follow
  if FLAGS.checkpoint:
    raise UserError("--follow evaluates every checkpoint as it comes: drop --checkpoint")
  split = FLAGS.split if FLAGS["split"].present else "eval"
  follow.wait_for_run(FLAGS.output_dir, FLAGS.follow_timeout_s)
  t, _ = common.load_run(restore=False)
  steps = follow.Follower(t, split, FLAGS.follow_timeout_s, select=FLAGS.select).run()
  print(json.dumps({"problem": t.name, "split": split, "evaluated_steps": steps}))


def main(argv):
  del argv
  if FLAGS.follow:
    return follow_run()
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

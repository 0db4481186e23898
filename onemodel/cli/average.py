r"""onemodel-average: average the model weights of a run's last N checkpoints.

  onemodel-average --output_dir=runs/multi30k_en_de --num_last=3
  onemodel-eval --output_dir=runs/multi30k_en_de \
      --checkpoint=runs/multi30k_en_de/averaged/ckpt-3000
"""

import os

from absl import flags

from onemodel.cli import common

FLAGS = flags.FLAGS
common.define_gin_flags()
common.define_dir_flags()
common.define_run_flags()
flags.DEFINE_integer("num_last", 3, "How many of the latest checkpoints to average.")
flags.DEFINE_string("averaged_dir", "", "Where to write (default OUTPUT_DIR/averaged).")


def main(argv):
  del argv
  if FLAGS.num_last < 1:
    raise common.UserError("--num_last must be at least 1")
  t, _ = common.load_run()
  from onemodel import averaging
  out = FLAGS.averaged_dir or os.path.join(FLAGS.output_dir, "averaged")
  path = averaging.average_checkpoints(t, FLAGS.num_last, out)
  print(f"averaged {min(FLAGS.num_last, len(t.manager.checkpoints))} checkpoints into "
        f"{path}")


def run():
  common.run(main)


if __name__ == "__main__":
  run()

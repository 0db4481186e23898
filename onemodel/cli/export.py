"""onemodel-export: write a SavedModel that takes raw inputs (text, WAV or image bytes).

  onemodel-export --output_dir=runs/fsdd [--export_dir=runs/fsdd/export]
      [--gin_param="DecodeConfig.method='beam'"]

Serve it with TF Serving (see README) or run it with onemodel-predict."""

import os

from absl import flags

from onemodel.cli import common

FLAGS = flags.FLAGS
common.define_gin_flags()
common.define_dir_flags()
common.define_run_flags()
flags.DEFINE_string("export_dir", "", "Where to write (default OUTPUT_DIR/export/STEP).")


def main(argv):
  del argv
  t, path = common.load_run()
  from onemodel import decoding, export
  step = int(t.step.numpy())
  out = FLAGS.export_dir or os.path.join(FLAGS.output_dir, "export", str(step))
  # A joint (mixture) run exports one signature per problem from the same weights.
  servable = export.Servable(t.model, t.problems, t.vocabs, decoding.from_gin())
  export.export(servable, out)
  print(f"exported {path} to {out} (signatures: {', '.join(servable.functions)})")


def run():
  common.run(main)


if __name__ == "__main__":
  run()

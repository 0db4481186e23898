"""onemodel-prepare: build problems' TFDS data and vocabularies ahead of time.

  onemodel-prepare --problem=mnist,fsdd --manual_dir=../shared/data --data_dir=~/data
"""

from absl import flags

from onemodel.cli import common

FLAGS = flags.FLAGS
common.define_dir_flags()
flags.DEFINE_list("problem", [], "Problems to prepare (comma-separated; 'all' for all).")
flags.DEFINE_bool("download", False, "Fetch missing raw files from their upstream URLs.")


def main(argv):
  del argv
  common.load_plugins()
  from onemodel import data as data_lib
  from onemodel import registry
  if not FLAGS.problem:
    raise common.UserError("--problem is required (e.g. --problem=mnist or --problem=all)")
  names = registry.PROBLEMS.names() if FLAGS.problem == ["all"] else FLAGS.problem
  problems = [registry.get_problem(n) for n in names]
  for p in problems:
    data_lib.prepare(p, FLAGS.data_dir, FLAGS.manual_dir, download=FLAGS.download)
    print(f"prepared {p.name} in {FLAGS.data_dir}", flush=True)


def run():
  common.run(main)


if __name__ == "__main__":
  run()

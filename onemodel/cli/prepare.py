"""onemodel-prepare: build problems' TFDS data and vocabularies ahead of time.

  onemodel-prepare --problem=mnist,fsdd --manual_dir=../shared/data --data_dir=~/data
  onemodel-prepare --problem=multimodel --manual_dir=../shared/data,fsdd=/my/fsdd

A mixture name prepares every member problem and the vocabularies its run reads (one
shared by its text-target problems, a text classifier's own).
`--manual_dir` is a root with one subdirectory per dataset, PROBLEM=DIR pairs, or both.
"""

from absl import flags

from onemodel.cli import common

FLAGS = flags.FLAGS
common.define_dir_flags()
flags.DEFINE_list("problem", [], "Problems to prepare (comma-separated; 'all' for all).")
flags.DEFINE_bool("download", False, "Fetch missing raw files from their upstream URLs.")
flags.DEFINE_integer("num_shards", 0, "Record files per split (0: TFDS's choice, files of "
                     "64 MB to 1 GiB): more files let each worker of a cluster read only "
                     "its own.")


def main(argv):
  del argv
  common.load_plugins()
  from onemodel import data as data_lib
  from onemodel import registry
  from onemodel import vocab as vocab_lib
  t2t_vocab = vocab_lib.text_vocab()  # gin's text_vocab.t2t_subwords_file
  if FLAGS.num_shards < 0:
    raise common.UserError(f"--num_shards={FLAGS.num_shards}: must be >= 0")
  if not FLAGS.problem:
    raise common.UserError("--problem is required (e.g. --problem=mnist or --problem=all)")
  from onemodel import mixtures
  names = registry.PROBLEMS.names() if FLAGS.problem == ["all"] else FLAGS.problem
  tasks = [mixtures.resolve(n) for n in names]  # unknown names fail before any work
  done = set()
  for problems, mixture in tasks:
    for p in problems:
      if p.name not in done:
        data_lib.prepare(p, FLAGS.data_dir, FLAGS.manual_dir, download=FLAGS.download,
                         num_shards=FLAGS.num_shards, vocab=False)
        print(f"prepared {p.name} in {FLAGS.data_dir}", flush=True)
        done.add(p.name)
    # The vocabularies a run of this name reads: a problem's own, or a mixture's shared
    # one and its classifiers' own (never a text-target member's own, which that run
    # would not read; as the trainer does).
    vocabs, _ = data_lib.get_vocabs(problems, FLAGS.data_dir, t2t_file=t2t_vocab)
    if mixture is not None:
      readers = {}  # each vocabulary with the problems that read it
      for name in mixture.problems:
        v = vocabs[name]
        if v is not None:
          readers.setdefault(id(v), [type(v).__name__, []])[1].append(name)
      read = "; ".join(f"{k} ({', '.join(ps)})" for k, ps in readers.values())
      print(f"prepared mixture {mixture.name} ({', '.join(mixture.problems)}; "
            f"vocabularies: {read or 'none'}) in {FLAGS.data_dir}", flush=True)


def run():
  common.run(main)


if __name__ == "__main__":
  run()

r"""onemodel-decode: decode raw inputs with a trained run, as T2T's t2t-decoder.

  onemodel-decode --output_dir=runs/multi30k_en_de --decode_from_file=in.en \
      --decode_to_file=out.de [--decode_refs=ref.de]
  onemodel-decode --output_dir=runs/fsdd --decode_from_dir=clips/ [--decode_refs=refs.txt]
  onemodel-decode --output_dir=runs/mnist --interactive          (paths or text on stdin)
  onemodel-decode --output_dir=runs/tinyshakespeare --num_samples=3 \
      --gin_param="DecodeConfig.method='sample'"

Decoding follows the gin DecodeConfig (method greedy|beam|sample, beam_size, alpha,
temperature, top_k, return_beams). Inputs go through the same in-graph preprocessing as an
exported SavedModel. With --decode_refs (one reference a line, in input order), the
problem's metric is printed."""

import dataclasses
import os
import sys

from absl import flags

from onemodel.cli import common
from onemodel.errors import UserError

FLAGS = flags.FLAGS
common.define_gin_flags()
common.define_dir_flags()
common.define_run_flags()
flags.DEFINE_string("decode_from_file", "", "Text problems: one input a line.")
flags.DEFINE_string("decode_from_dir", "", "Speech/image problems: a directory of files "
                    "(stdout: FILE<TAB>OUTPUT per file, sorted by name).")
flags.DEFINE_string("decode_to_file", "", "Write outputs here, one a line (default stdout).")
flags.DEFINE_string("decode_refs", "", "References, one a line, aligned with the inputs.")
flags.DEFINE_bool("interactive", False, "Read inputs (text, or file paths) from stdin.")
flags.DEFINE_integer("num_samples", 0, "Language models: how many samples to draw.")
flags.DEFINE_integer("batch_size", 32, "Inputs per decoding call.")
flags.DEFINE_string("problem", "", "Which problem of a joint (mixture) run to decode.")


def _read_inputs(problem):
  if FLAGS.decode_from_file:
    if not os.path.isfile(FLAGS.decode_from_file):
      raise UserError(f"--decode_from_file {FLAGS.decode_from_file} does not exist")
    if problem.inputs.modality != "text":
      raise UserError(f"problem {problem.name} takes {problem.inputs.modality} input: "
                      "use --decode_from_dir with a directory of files")
    lines = _text_lines(FLAGS.decode_from_file, "--decode_from_file")
    if not lines:
      raise UserError(f"--decode_from_file {FLAGS.decode_from_file} is empty: nothing to "
                      "decode")
    return lines
  if FLAGS.decode_from_dir:
    d = FLAGS.decode_from_dir
    if not os.path.isdir(d):
      raise UserError(f"--decode_from_dir {d} is not a directory")
    files = sorted(f for f in os.listdir(d) if os.path.isfile(os.path.join(d, f)))
    if not files:
      raise UserError(f"--decode_from_dir {d} has no files")
    return {f: open(os.path.join(d, f), "rb").read() for f in files}
  raise UserError("give --decode_from_file, --decode_from_dir, --interactive or "
                  "--num_samples")


def _text_lines(path, flag):
  """A UTF-8 text file's lines; anything else is a one-line error naming the file."""
  try:
    with open(path, encoding="utf-8") as f:
      return [line.rstrip("\n") for line in f]
  except UnicodeDecodeError as e:
    raise UserError(f"{flag} {path} is not UTF-8 text (byte {e.start}): give one input "
                    "a line") from None


def _check_outputs_and_refs():
  """Everything about --decode_to_file and --decode_refs that can be wrong, checked
  before any decoding (and before anything is written) -> the references or None."""
  if FLAGS.decode_to_file:
    target = FLAGS.decode_to_file
    if os.path.isdir(target):
      raise UserError(f"--decode_to_file {target} is a directory")
    from onemodel import fileio
    fileio.check_directory_path(os.path.dirname(os.path.abspath(target)),
                                f"--decode_to_file {target}: its directory")
  if not FLAGS.decode_refs:
    return None
  if not os.path.isfile(FLAGS.decode_refs):
    raise UserError(f"--decode_refs {FLAGS.decode_refs} does not exist")
  from onemodel import decoding
  if decoding.from_gin().return_beams:
    raise UserError("--decode_refs scores the best beam: unset DecodeConfig.return_beams")
  return _text_lines(FLAGS.decode_refs, "--decode_refs")


def _decode_all(servable, problem, inputs):
  import tensorflow as tf
  outs = []
  for i in range(0, len(inputs), FLAGS.batch_size):
    chunk = inputs[i:i + FLAGS.batch_size]
    try:
      res = servable(problem.name, chunk)
    except tf.errors.InvalidArgumentError as e:
      from onemodel.export import error_line
      raise UserError(f"bad input among items {i + 1}-{i + len(chunk)}: "
                      f"{error_line(e.message)}") from e
    outs += [o.decode("utf-8") for o in res["outputs"].numpy().reshape(-1)]
  return outs


def _interactive(servable, problem):
  import tensorflow as tf
  text = problem.inputs.modality == "text"
  prompt = "input> " if text else "file> "
  print(f"{problem.name}: type {'a sentence' if text else 'a file path'}; Ctrl-D ends.")
  while True:
    try:
      line = input(prompt)
    except EOFError:
      return
    if not line.strip():
      continue
    try:
      data = line if text else open(line.strip(), "rb").read()
      print(servable(problem.name, [data])["outputs"].numpy()[0].decode("utf-8"))
    except (OSError, tf.errors.InvalidArgumentError) as e:
      from onemodel.export import error_line
      print(f"error: {error_line(e.message) if hasattr(e, 'message') else e}")


def _samples(t, p, n):
  import tensorflow as tf
  from onemodel import decoding
  cfg = dataclasses.replace(decoding.from_gin(), method="sample")
  ids, _ = decoding.decode(t.model, p.name, {"targets": tf.zeros([n, p.targets.length],
                                                                  tf.int32)},
                           cfg.max_decode_length or p.targets.length, cfg)
  return [t.vocabs[p.name].decode(row) for row in ids.numpy()]


def main(argv):
  del argv
  t, _ = common.load_run()
  from onemodel import decoding, export, metrics
  p = common.pick_problem(t, FLAGS.problem)
  refs = _check_outputs_and_refs()
  names = None  # file names of --decode_from_dir's inputs, shown beside their outputs
  if p.inputs is None:
    if FLAGS.num_samples < 1:
      raise UserError(f"problem {p.name} is a language model: pass --num_samples=N")
    outputs = _samples(t, p, FLAGS.num_samples)
  else:
    servable = export.Servable(t.model, [p], {p.name: t.vocabs[p.name]},
                               decoding.from_gin())
    if FLAGS.interactive:
      return _interactive(servable, p)
    inputs = _read_inputs(p)
    if isinstance(inputs, dict):
      names, inputs = list(inputs), list(inputs.values())
    if refs is not None and len(refs) != len(inputs):
      raise UserError(f"--decode_refs {FLAGS.decode_refs} has {len(refs)} lines for "
                      f"{len(inputs)} inputs")
    outputs = _decode_all(servable, p, inputs)
  outputs = [o.replace("\n", " ") for o in outputs]
  if FLAGS.decode_to_file:  # one output a line, aligned with the inputs
    from onemodel import fileio
    fileio.atomic_write_text(FLAGS.decode_to_file, "".join(o + "\n" for o in outputs))
  else:
    sys.stdout.write("".join((f"{n}\t" if names else "") + o + "\n"
                             for n, o in zip(names or outputs, outputs)))
  if refs is not None:
    if len(refs) != len(outputs):
      raise UserError(f"--decode_refs has {len(refs)} lines for {len(outputs)} outputs")
    for name in p.metrics:
      if name in metrics.METRICS:
        score = metrics.METRICS.get(name)(outputs, refs)
        print(f"{name} {score:.2f} on {len(refs)} examples", file=sys.stderr)


def run():
  common.run(main)


if __name__ == "__main__":
  run()

"""onemodel-predict: run an exported SavedModel on files. Needs TensorFlow and
tensorflow-text only: nothing else of onemodel is needed (check: the test runs it with
onemodel's packages blocked); with onemodel installed, TensorFlow's start-up notices are
filtered as in the other commands.

  onemodel-predict --saved_model=runs/fsdd/export/2500 clips/*.wav
  onemodel-predict --saved_model=runs/mnist/export/3500 digits/        (a directory)
  onemodel-predict --saved_model=runs/multi30k_en_de/export/3000 sentences.txt

A text signature reads each file's lines; WAV and image signatures read each file (a
directory means its files, sorted). Prints `input<TAB>output<TAB>score` per line."""

import contextlib
import os
import sys

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("saved_model", None, "An onemodel-export directory.")
flags.DEFINE_string("signature", "serving_default", "Signature (a problem name).")
flags.DEFINE_integer("batch_size", 32, "Inputs per call.")


def _error_line(message: str) -> str:
  """The informative line of a TF InvalidArgumentError raised by a serving function."""
  lines = [l.strip() for l in message.splitlines() if l.strip()]
  for l in lines:
    if "onemodel:" in l:
      return l[l.index("onemodel:"):].split("]")[0].strip()
  skip = ("Graph execution error", "Detected at node", "[[", "Stack trace", "File ")
  rest = [l for l in lines if not l.startswith(skip)]
  return (rest or lines or ["invalid input"])[0]


# (predict.py imports nothing of onemodel, so export.error_line is repeated here.)


def _inputs(kind, paths):
  """-> list of (label, bytes-or-text) for the signature's input kind."""
  files = []
  for p in paths:
    if os.path.isdir(p):
      files += sorted(os.path.join(p, f) for f in os.listdir(p)
                      if os.path.isfile(os.path.join(p, f)))
    elif os.path.isfile(p):
      files.append(p)
    else:
      raise ValueError(f"input {p} does not exist")
  out = []
  for f in files:
    if kind == "text":
      with open(f, encoding="utf-8") as fh:
        out += [(f"{f}:{i + 1}", line.rstrip("\n")) for i, line in enumerate(fh)]
    else:
      with open(f, "rb") as fh:
        out.append((f, fh.read()))
  return out


def main(argv):
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  prog = "onemodel-predict"
  paths = argv[1:]
  if not FLAGS.saved_model:
    sys.exit(f"{prog}: error: give --saved_model=DIR (a directory onemodel-export wrote)")
  if not os.path.isdir(FLAGS.saved_model):
    sys.exit(f"{prog}: error: --saved_model {FLAGS.saved_model} is not a directory")
  if not paths:
    sys.exit(f"{prog}: error: give input files or directories after the flags")
  with _quiet_start():
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops the graph uses)
    tf.config.list_physical_devices()
  try:
    loaded = tf.saved_model.load(FLAGS.saved_model)
  except Exception as e:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    sys.exit(f"{prog}: error: {FLAGS.saved_model} is not a SavedModel: {first}")
  if FLAGS.signature not in loaded.signatures:
    sys.exit(f"{prog}: error: {FLAGS.saved_model} has no signature {FLAGS.signature!r} (a "
             "mixture's export has one per problem and no default): pass --signature="
             f"one of {', '.join(sorted(loaded.signatures))}")
  fn = loaded.signatures[FLAGS.signature]
  kind = next(iter(fn.structured_input_signature[1]))  # 'text', 'wav' or 'image'
  try:
    items = _inputs(kind, paths)
  except ValueError as e:
    sys.exit(f"{prog}: error: {e}")
  failed = 0
  for i in range(0, len(items), FLAGS.batch_size):
    chunk = items[i:i + FLAGS.batch_size]
    try:
      res = fn(**{kind: tf.constant([x for _, x in chunk])})
      rows = zip(res["outputs"].numpy(), res["scores"].numpy())
      for (label, _), (out, score) in zip(chunk, rows):
        print(f"{label}\t{out.decode('utf-8')}\t{float(score):.4f}")
    except tf.errors.InvalidArgumentError:
      for label, x in chunk:  # find and name the bad input(s); keep the good ones
        try:
          r = fn(**{kind: tf.constant([x])})
          print(f"{label}\t{r['outputs'].numpy()[0].decode('utf-8')}\t"
                f"{float(r['scores'].numpy()[0]):.4f}")
        except tf.errors.InvalidArgumentError as e:
          failed += 1
          print(f"{prog}: error: {label}: {_error_line(e.message)}", file=sys.stderr)
  if failed:
    sys.exit(1)


def _quiet_start():
  """TensorFlow's start-up notices filtered as every onemodel command filters them, when
  onemodel is installed; a serving machine with TensorFlow alone sees them unfiltered."""
  try:
    from onemodel.cli import native_stderr
  except ImportError:
    return contextlib.nullcontext()
  return native_stderr.filtered()


def run():
  # absl's --help prints the main module's docstring and key flags; the console
  # script's shim has neither (as onemodel/cli/common.py does for the other commands).
  main_module = sys.modules["__main__"]
  if not main_module.__doc__:
    main_module.__doc__ = __doc__
  for flag in FLAGS.get_flags_for_module(__name__):
    FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  app.run(main)


if __name__ == "__main__":
  run()

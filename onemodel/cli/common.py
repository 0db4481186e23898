"""Flags shared by the CLI tools, gin parsing, and one-line errors for user mistakes.

Flags say *where and how* to run (gin files and params, directories, strategy); gin says
*what* to run. No flag duplicates a gin knob."""

import logging
import os
import sys

from absl import app
from absl import flags

from onemodel import errors
from onemodel import quiet
from onemodel.cli import native_stderr
from onemodel.errors import UserError

FLAGS = flags.FLAGS


def start_tensorflow():
  """Imports TensorFlow and lets it find its devices (CUDA's probe) with its start-up
  notices filtered (`native_stderr`). Every command calls it before anything else
  touches TensorFlow; later calls cost nothing."""
  with native_stderr.filtered():
    import tensorflow as tf
    tf.config.list_physical_devices()


def define_dir_flags():
  start_tensorflow()
  from onemodel import data as data_lib
  flags.DEFINE_string("data_dir", data_lib.default_data_dir(),
                      "Prepared TFDS data and vocabularies (env ONEMODEL_DATA_DIR).")
  flags.DEFINE_string("manual_dir", data_lib.default_manual_dir(),
                      "Raw dataset files, one subdirectory per dataset "
                      "(env ONEMODEL_MANUAL_DIR; e.g. ../shared/data).")
  flags.DEFINE_string("usr_dir", "", "Directory of problem modules to import (plugins).")


def define_gin_flags():
  flags.DEFINE_multi_string("gin_file", [], "gin config files, applied in order.")
  flags.DEFINE_multi_string("gin_param", [], "gin bindings, applied after the files.")


def import_configurables():
  """Registers every gin configurable before parsing, so typos are caught at parse."""
  from onemodel import adapters, backbone, mixtures, optim, trainer, vocab  # noqa: F401


def _gin_search_paths(files):
  paths = [os.getcwd()]
  for f in files:
    d = os.path.dirname(os.path.abspath(f))
    while d and d != os.path.dirname(d):
      if os.path.basename(d) == "gin":
        paths.append(d)
        break
      d = os.path.dirname(d)
  here = _shipped_gin_dir()
  if here:
    paths.append(here)
  return paths


def _shipped_gin_dir() -> str:
  """The repository's `gin/` directory next to the onemodel package ('' if not there)."""
  here = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__)))), "gin")
  return here if os.path.isdir(here) else ""


def resolve_gin_file(f: str) -> str:
  """A --gin_file as given if it exists; else the shipped file it names, relative to the
  repository (`gin/models/small.gin`) or to its gin directory (`models/small.gin`), so
  the README's paths work from any directory, as `include` lines already do."""
  if os.path.isfile(f):
    return f
  tried = [os.path.abspath(f)]
  shipped = _shipped_gin_dir()
  if shipped and not os.path.isabs(f):
    for base in (os.path.dirname(shipped), shipped):
      candidate = os.path.join(base, f)
      if os.path.isfile(candidate):
        return candidate
      if candidate not in tried:
        tried.append(candidate)
  raise UserError(f"gin file {f} does not exist (looked for {' and '.join(tried)})")


def parse_gin(files, params, finalize=True):
  import gin
  import_configurables()
  files = [resolve_gin_file(f) for f in files]
  for p in _gin_search_paths(files):
    gin.add_config_file_search_path(p)
  # gin logs "Path not found" at ERROR level for each search path an include is not in,
  # before it finds the include in the next one: not an error, so not shown.
  not_here = quiet.DropMessages("Path not found")
  logging.getLogger().addFilter(not_here)
  try:
    gin.parse_config_files_and_bindings(files, params, finalize_config=finalize)
  except (ValueError, SyntaxError, IOError, KeyError, TypeError) as e:
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    msg = lines[0] if lines else type(e).__name__
    where = next((l for l in lines[1:] if l.startswith("In ")), "")
    raise UserError(f"gin: {msg}{' (' + where + ')' if where else ''}") from e
  finally:
    logging.getLogger().removeFilter(not_here)


def hide_expected_warnings():
  """Each problem's evaluator traces its own functions (and the last, smaller batch
  traces once more): expected, so TensorFlow's "triggered tf.function retracing"
  warning, printed twice (its own handler and absl's), is not shown."""
  tf_logger = quiet.tensorflow_logger()
  tf_logger.addFilter(quiet.DropMessages("", "tf.function retracing"))


def define_run_flags():
  flags.DEFINE_string("output_dir", None, "The training run's output dir.")
  flags.DEFINE_string("checkpoint", "", "A checkpoint path, or 'best' (the one "
                      "TrainConfig.select kept); default: the latest in the run.")


def load_run(restore: bool = True):
  """Rebuilds a run's model from OUTPUT_DIR/config.gin and restores its checkpoint
  (`restore=False`: none yet) -> (trainer, checkpoint path or None)."""
  load_plugins()
  out = FLAGS.output_dir
  if not out or not os.path.isdir(out):
    raise UserError(f"--output_dir {out} is not a training run directory")
  config = os.path.join(out, "config.gin")
  if not os.path.isfile(config):
    raise UserError(f"{config} not found: is {out} an onemodel-train output dir?")
  parse_gin([config] + FLAGS.gin_file, FLAGS.gin_param)
  from onemodel import adapters
  from onemodel import backbone
  from onemodel import distribute
  from onemodel import trainer
  # No optimizer and no training input pipeline: only the model, under the default
  # strategy (several GPUs: mirrored, and evaluation runs on every replica).
  # The run's gin is read here, at the edge (eval, export, decode, predict, average).
  t = trainer.Trainer(out, FLAGS.data_dir, FLAGS.manual_dir, cfg=trainer.TrainConfig(),
                      backbone_cfg=backbone.BackboneConfig(), training=False,
                      strategy=distribute.get_strategy(),
                      modality_cfg=adapters.ModalityConfigs.from_gin())
  return t, t.restore(FLAGS.checkpoint) if restore else None


def pick_problem(t, name: str):
  """The run's problem named `name` (required for a joint run of several problems)."""
  names = [p.name for p in t.problems]
  if not name:
    if len(names) > 1:
      raise UserError(f"run {t.output_dir} trained {', '.join(names)}: pass --problem")
    return t.problem
  if name not in names:
    raise UserError(f"--problem {name} is not in run {t.output_dir} "
                    f"(it trained {', '.join(names)})")
  return t.problems[names.index(name)]


def load_plugins():
  """Entry-point plugins, --usr_dir, and the plugin dirs recorded in --output_dir's run
  (OUTPUT_DIR/plugins.json), so eval/export/decode of a run need no --usr_dir."""
  from onemodel import registry
  run_dir = FLAGS.output_dir if "output_dir" in FLAGS else ""
  registry.load_plugins(FLAGS.usr_dir, run_dir or "")


def show_own_flags_in_help(main):
  """absl's `--help` prints the main module's docstring and lists its flags, and a
  console script's main module (the entry-point shim) has neither: without this,
  `--help` says only "Try --helpfull". The tool's module lends its docstring, and
  onemodel's flags become key flags of the main module."""
  shim = sys.modules.get("__main__")
  if shim is not None and not shim.__doc__:
    shim.__doc__ = sys.modules[main.__module__].__doc__
  for module, module_flags in FLAGS.flags_by_module_dict().items():
    if module.startswith("onemodel."):
      for flag in module_flags:
        FLAGS.register_key_flag_for_module(sys.argv[0], flag)


# Flags that name a directory a command may create: a path through an existing file is
# a one-line error before any work.
_DIRECTORY_FLAGS = ("data_dir", "output_dir", "export_dir", "averaged_dir")


def _check_directory_flags():
  from onemodel import fileio
  for name in _DIRECTORY_FLAGS:
    if name in FLAGS and FLAGS[name].value:
      fileio.check_directory_path(FLAGS[name].value, f"--{name}")


def run(main):
  """app.run(main), turning a `UserError` into one line on stderr and exit status 1."""
  prog = os.path.basename(sys.argv[0])
  show_own_flags_in_help(main)

  def _main(argv):
    from absl import logging as absl_logging
    if not FLAGS["verbosity"].present:  # TFDS and TF are chatty at INFO.
      absl_logging.set_verbosity(absl_logging.WARNING)
    hide_expected_warnings()
    start_tensorflow()
    try:
      import tensorflow_datasets as tfds
      tfds.disable_progress_bar()
    except ImportError:
      pass
    try:
      _check_directory_flags()
      return main(argv)
    except UserError as e:
      print(f"{prog}: error: {errors.one_line(str(e))}", file=sys.stderr, flush=True)
      sys.exit(getattr(e, "exit_code", 1))
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside training
      print(f"{prog}: interrupted", file=sys.stderr, flush=True)
      sys.exit(130)

  app.run(_main)

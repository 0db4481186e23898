"""A public test kit for problems (as seqio's `test_utils.test_task`): one call checks a
plugin's problem end to end on a few of its real examples.

    # my_plugin/test_my_problem.py, run with pytest
    from onemodel import testing

    def test_my_problem(tmp_path):
      testing.check_problem("my_problem", manual_dir="/data/raw", usr_dir="my_plugin",
                            data_dir=str(tmp_path))

Stages, in order: prepare (the TFDS builder on the raw files), raw examples (what
`to_raw` returns matches the feature specs: keys, dtypes, shapes, label range), vocabulary,
a training batch (static shapes), the model (a tiny one) and a finite loss, a train step
eagerly, under `tf.function` and under XLA, evaluation with the problem's metrics, and an
export round-trip (the SavedModel on raw encoded inputs gives what the model gives in
process). A failure raises `ProblemCheckError` naming the problem, the stage and, where
it can, the plugin's own file and line.

The kit builds a tiny model from values (`TINY_BACKBONE`, `TINY_SPEECH`) and trains it
with the trainer's own step (`train_step.build_step_fn`). It reads the caller's gin
bindings of the adapters and of decoding as every edge does, and never changes or clears
the caller's gin config.
"""

import os
import tempfile
import time
import traceback
from typing import Dict, Optional, Sequence

import numpy as np

TINY_BACKBONE = dict(model_dim=32, num_heads=2, ffn_dim=64, num_encoder_layers=1,
                     num_decoder_layers=1, dropout_rate=0.0, ffn="dense")
TINY_SPEECH = dict(num_mels=40, conv_channels=8)


class ProblemCheckError(AssertionError):
  """A stage of `check_problem` failed (an AssertionError, so pytest reports it as a
  failed check); the message names the problem, the stage and where."""


def _plugin_files(problem) -> set:
  import inspect
  files = set()
  for obj in (problem.builder, problem.to_raw, problem.augment):
    try:
      if obj is not None:
        files.add(os.path.abspath(inspect.getfile(obj)))
    except TypeError:
      pass
  return files


def _where(exc: BaseException, plugin_files) -> str:
  """The innermost frame in the plugin's own files, else outside the libraries."""
  frames = traceback.extract_tb(exc.__traceback__)
  own = [f for f in frames if os.path.abspath(f.filename) in plugin_files]
  if not own:
    own = [f for f in frames if "site-packages" not in f.filename and
           not f.filename.startswith("<") and f.filename != __file__]
  f = (own or frames or [None])[-1]
  return f" ({f.filename}:{f.lineno})" if f else ""


def _defined_at(fn) -> str:
  code = getattr(fn, "__code__", None)
  return f" ({code.co_filename}:{code.co_firstlineno})" if code else ""


class _Stages:
  def __init__(self, problem):
    self.problem, self.files, self.seconds = problem, _plugin_files(problem), {}

  def run(self, stage, fn, *args):
    start = time.time()
    try:
      out = fn(*args)
    except ProblemCheckError:
      raise
    except Exception as e:  # anything a broken plugin can raise
      from onemodel.errors import UserError
      msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
      # A UserError already names the thing (file, problem, binding); others get the
      # innermost line of the plugin's own code.
      where = "" if isinstance(e, UserError) else _where(e, self.files)
      raise ProblemCheckError(f"problem {self.problem.name}: {stage} failed: "
                              f"{type(e).__name__}: {msg}{where}") from e
    self.seconds[stage] = round(time.time() - start, 2)
    return out

  def fail(self, stage, msg, where=""):
    raise ProblemCheckError(f"problem {self.problem.name}: {stage}: {msg}{where}")


def _check_raw(stages, p, data_dir, roles):
  """`to_raw` of a few real examples of every split matches the feature specs."""
  import tensorflow as tf
  from onemodel import data as data_lib
  where = _defined_at(p.to_raw)
  for role in roles:
    for ex in data_lib.raw_split(p, role, data_dir).take(2):
      raw = p.to_raw(ex)
      want = sorted(r for r, _ in p.features())
      if not isinstance(raw, dict) or sorted(raw) != want:
        got = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        stages.fail("raw examples", f"to_raw returned {got}, expected keys {want}", where)
      for r, spec in p.features():
        v = tf.convert_to_tensor(raw[r])
        bad = ""
        if spec.modality == "text" and (v.dtype != tf.string or v.shape.rank != 0):
          bad = f"text must be a scalar string, got {v.dtype.name} {v.shape}"
        elif spec.modality == "label":
          if not v.dtype.is_integer or v.shape.rank != 0:
            bad = f"a label must be a scalar integer, got {v.dtype.name} {v.shape}"
          elif not 0 <= int(v) < len(spec.class_names):
            bad = f"label {int(v)} outside 0..{len(spec.class_names) - 1} (class_names)"
        elif spec.modality == "image" and (v.dtype != tf.uint8 or
                                           tuple(v.shape) != tuple(spec.shape)):
          bad = f"image must be uint8 {tuple(spec.shape)} (FeatureSpec.shape), got " \
                f"{v.dtype.name} {tuple(v.shape)}"
        elif spec.modality == "speech" and v.shape.rank != 1:
          bad = f"speech must be 1-D samples, got shape {tuple(v.shape)}"
        if bad:
          stages.fail("raw examples", f"{role} split, {r}: {bad}", where)


def _encode_raw(p, value):
  """A raw input value -> the encoded bytes a client sends to the SavedModel."""
  import tensorflow as tf
  m = p.inputs.modality
  if m == "text":
    return value
  if m == "image":
    return tf.io.encode_png(value).numpy()
  if m == "speech":
    wav = tf.cast(value, tf.float32) / (32768.0 if value.dtype == np.int16 else 1.0)
    return tf.audio.encode_wav(wav[:, None], p.inputs.sample_rate).numpy()
  return None


def check_problem(problem, manual_dir: str, data_dir: Optional[str] = None,
                  usr_dir: str = "", batch_size: int = 4, eval_examples: int = 8,
                  jit_compile: bool = True, evaluate: bool = True, export: bool = True,
                  roles: Sequence[str] = ("train", "eval", "test")) -> Dict[str, float]:
  """Checks `problem` (a name or a `Problem`) end to end; returns seconds per stage.

  manual_dir: the raw files (the problem reads MANUAL_DIR/raw_subdir).
  data_dir: where to prepare it (default: a temporary directory).
  usr_dir: a plugin directory to import first (as --usr_dir).
  jit_compile, evaluate, export: turn off the slower stages (XLA compile, decoding
    with the metrics, SavedModel export) for a quicker check."""
  import dataclasses
  import tensorflow as tf
  from onemodel import adapters
  from onemodel import backbone as backbone_lib
  from onemodel import data as data_lib
  from onemodel import decoding, evaluation
  from onemodel import export as export_lib
  from onemodel import model as model_lib
  from onemodel import registry
  from onemodel import train_step
  from onemodel import vocab as vocab_lib
  registry.load_plugins(usr_dir)
  p = registry.get_problem(problem) if isinstance(problem, str) else problem
  data_dir = data_dir or tempfile.mkdtemp(prefix=f"onemodel_check_{p.name}_")
  stages = _Stages(p)
  # The kit is an edge: gin's adapter and decoding bindings are read here, and the same
  # values go to the input pipeline and the model (evaluation and export take the
  # model's); the model itself is tiny whatever gin binds.
  gin_modality = adapters.ModalityConfigs.from_gin()
  modality_cfg = dataclasses.replace(
      gin_modality, speech=dataclasses.replace(gin_modality.speech, **TINY_SPEECH))
  decode_cfg = decoding.from_gin()
  t2t_vocab = vocab_lib.text_vocab()
  stages.run("prepare", lambda: data_lib.prepare(p, data_dir, manual_dir, t2t_file=t2t_vocab))
  stages.run("raw examples", _check_raw, stages, p, data_dir,
             [r for r in roles if r in p.splits])
  vocab = stages.run("vocabulary", lambda: data_lib.get_vocab(p, data_dir, t2t_file=t2t_vocab))
  batch = stages.run("batch", lambda: next(iter(data_lib.dataset(
      p, "train", data_dir, batch_size, training=True, vocab=vocab, seed=0,
      modality_cfg=modality_cfg))))
  expected = {"targets": (batch_size, p.targets.length)}
  if p.inputs is not None and p.inputs.modality == "image":
    expected["inputs"] = (batch_size,) + tuple(p.inputs.shape)
  if p.inputs is not None and p.inputs.modality == "text":
    expected["inputs"] = (batch_size, p.inputs.length)
  for key, shape in expected.items():
    if tuple(batch[key].shape) != shape:
      stages.fail("batch", f"{key} {tuple(batch[key].shape)}, expected {shape} "
                  "(the FeatureSpec)")
  model = stages.run("model", lambda: model_lib.build(
      [p], {p.name: vocab}, cfg=backbone_lib.BackboneConfig(**TINY_BACKBONE),
      modality_cfg=modality_cfg))
  logits = stages.run("model", lambda: model(batch, problem=p.name))
  vocab_size = model.target_embedding(p.name).vocab_size
  if int(tf.reduce_max(batch["targets"])) >= vocab_size:
    stages.fail("model", f"target ids reach {int(tf.reduce_max(batch['targets']))}, "
                f"the target vocabulary has {vocab_size}")
  opt = tf.keras.optimizers.Adam(1e-3)
  opt.build(model.trainable_variables)

  step_fn = train_step.build_step_fn(model, opt, p.name)

  def step(b):
    stats = step_fn(b)
    return stats["loss_sum"] / stats["tokens"]

  del logits
  modes = [("train step (eager)", step), ("train step (tf.function)", tf.function(step))]
  if jit_compile:
    modes.append(("train step (XLA)", tf.function(step, jit_compile=True)))
  for stage, fn in modes:
    loss = float(stages.run(stage, fn, batch))
    if not np.isfinite(loss):
      stages.fail(stage, f"loss is {loss}")
  if evaluate:
    ev = evaluation.Evaluator(model, p, vocab, data_dir, batch_size=batch_size,
                              decode_cfg=decode_cfg)
    results = stages.run("evaluation", ev.evaluate, "eval", eval_examples)
    missing = [m for m in p.metrics if m not in results]
    if missing:
      stages.fail("evaluation", f"metrics {missing} missing from {sorted(results)}")
  if export and p.inputs is not None and p.inputs.modality in export_lib.INPUT_KIND:
    stages.run("export", _check_export, p, model, vocab, data_dir, stages, decode_cfg)
  return stages.seconds


def _check_export(p, model, vocab, data_dir, stages, decode_cfg):
  """The SavedModel on encoded raw test inputs decodes what the model does in process."""
  import tensorflow as tf
  from onemodel import data as data_lib
  from onemodel import decoding
  from onemodel import export as export_lib
  role = "test" if "test" in p.splits else "eval"
  inputs = [_encode_raw(p, p.to_raw(ex)["inputs"].numpy())
            for ex in data_lib.raw_split(p, role, data_dir).take(3)]
  servable = export_lib.Servable(model, [p], {p.name: vocab}, decode_cfg)
  want = servable(p.name, inputs)["outputs"].numpy().tolist()
  with tempfile.TemporaryDirectory() as d:
    export_lib.export(servable, os.path.join(d, "export"))
    loaded = tf.saved_model.load(os.path.join(d, "export"))
    kind = export_lib.INPUT_KIND[p.inputs.modality]
    got = loaded.signatures[p.name](**{kind: tf.constant(inputs)})["outputs"]
    if got.numpy().tolist() != want:
      stages.fail("export", f"the SavedModel gave {got.numpy().tolist()}, the model in "
                  f"process {want}")

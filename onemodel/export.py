"""SavedModels that take raw inputs: text strings, WAV bytes, PNG/JPEG bytes.

Tokenization, feature extraction, decoding and detokenization all run inside the graph,
so a client needs TensorFlow and tensorflow-text only (T2T's exports wanted pre-encoded
ids, and every client re-implemented the tokenizer). One signature per problem, named
after it; a single-problem export also has `serving_default`. Input that is not what the
signature takes (an empty string, a corrupt WAV, a non-image) fails the request with an
InvalidArgumentError naming the problem; the serving process goes on.
"""

import os
import shutil
import tempfile

import tensorflow as tf

from onemodel import adapters
from onemodel import decoding
from onemodel.errors import UserError

INPUT_KIND = {"text": "text", "speech": "wav", "image": "image"}


def error_line(message: str) -> str:
  """The informative line of a TF InvalidArgumentError raised by a serving function."""
  lines = [l.strip() for l in message.splitlines() if l.strip()]
  for l in lines:
    if "onemodel:" in l:
      return l[l.index("onemodel:"):].split("]")[0].strip()
  skip = ("Graph execution error", "Detected at node", "[[", "Stack trace", "File ")
  rest = [l for l in lines if not l.startswith(skip)]
  return (rest or lines or ["invalid input"])[0]


class Servable(tf.Module):
  """Raw inputs -> outputs for each problem of a model. Also used by onemodel-decode."""

  def __init__(self, model, problems, vocabs, decode_cfg: decoding.DecodeConfig):
    super().__init__(name="onemodel")
    self.model = model
    self._problems = {p.name: p for p in problems}
    self._vocabs = vocabs
    self._cfg = decode_cfg
    self.functions = {}
    for p in problems:
      if p.inputs is None:
        continue  # language models take no input; sample them with onemodel-decode
      kind = INPUT_KIND.get(p.inputs.modality)
      if kind is None:
        continue
      self.functions[p.name] = self._make_fn(p, kind)

  def _features(self, p, data):
    """[N] encoded inputs -> a batch of model features, example by example."""
    mod = adapters.get_modality(p.inputs.modality)
    vocab = self._vocabs.get(p.name)
    # The settings its input layers were built with.
    modality_cfg = self.model.modality_cfg.for_problem(p.name)

    def one(x):
      return mod.features(mod.decode_raw(x, p.inputs), p.inputs, vocab, training=False,
                          modality_cfg=modality_cfg)

    # Every modality's features have static shapes; read them off a symbolic trace.
    traced = tf.function(one).get_concrete_function(tf.TensorSpec([], tf.string))
    spec = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype),
                                 traced.structured_outputs)
    feats = tf.map_fn(one, data, fn_output_signature=spec)
    return {"inputs" + (f"_{k}" if k else ""): v for k, v in feats.items()}

  def _make_fn(self, p, kind):
    model, cfg = self.model, self._cfg
    tmod = adapters.get_modality(p.targets.modality)
    vocab = self._vocabs.get(p.name)
    max_len = cfg.max_decode_length or p.targets.length
    decode = decoding.decode_function(model, p.name, max_len, cfg)  # XLA if configured

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=kind)])
    def serve(data):
      batch = self._features(p, data)
      batch["targets"] = tf.zeros([tf.shape(data)[0], p.targets.length], tf.int32)
      ids, scores = decode(batch)
      if len(ids.shape) == 3:  # return_beams: [N, K, T]
        n, k = tf.shape(ids)[0], tf.shape(ids)[1]
        text = tmod.postprocess_tf(tf.reshape(ids, [n * k, -1]), p.targets, vocab)
        return {"outputs": tf.reshape(text, [n, k]), "scores": scores}
      return {"outputs": tmod.postprocess_tf(ids, p.targets, vocab), "scores": scores}

    return serve

  def __call__(self, problem, data):
    return self.functions[problem](tf.constant(data))


def export(servable: Servable, export_dir: str) -> str:
  """Writes the SavedModel to a temporary directory, then renames it into place."""
  if not servable.functions:
    raise UserError("nothing to export: no problem of this model takes raw inputs")
  for name, vocab in servable._vocabs.items():
    if vocab is not None and not vocab.exportable:
      raise UserError(f"problem {name}: its vocabulary ({type(vocab).__name__}) cannot run "
                      "inside a SavedModel; use a learned (SentencePiece or char) vocabulary")
  signatures = {name: fn.get_concrete_function() for name, fn in servable.functions.items()}
  if len(signatures) == 1:
    signatures["serving_default"] = next(iter(signatures.values()))
  parent = os.path.dirname(os.path.abspath(export_dir))
  os.makedirs(parent, exist_ok=True)
  for name in os.listdir(parent):  # what a killed export left behind
    if name.startswith(".export-"):
      shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix=".export-")
  old = tmp + "-previous"
  try:
    tf.saved_model.save(servable, tmp, signatures=signatures)
    if os.path.exists(export_dir):  # the old export stays whole until the new one is in
      os.replace(export_dir, old)
    os.replace(tmp, export_dir)
  finally:
    for leftover in (tmp, old):
      if os.path.exists(leftover):
        shutil.rmtree(leftover)
  return export_dir


"""Warm start: a new run begins from another run's weights.

As Tensor2Tensor's `--warm_start_from`, Model Garden's `init_checkpoint` and T5X's
`initial_checkpoint`: `TrainConfig.init_from` names a run directory (its latest
checkpoint), a checkpoints directory (e.g. RUN/checkpoints/best) or one checkpoint
prefix, and `TrainConfig.init_scope` says which weights come from it:

* `backbone`: the shared encoder and decoder blocks and their norms only;
* `backbone_and_adapters`: also every adapter the two runs share, matched by problem and
  modality (an adapter's variable path names both: `one_model/mnist_image_input/...`),
  the target embeddings of the same vocabulary and the task-embedding rows of the
  problems both runs train; what this model has beyond that starts fresh (a problem
  added to a trained joint model);
* `all`: every weight of this model, none new (the same model, trained further).

Only model weights are read: the optimizer starts fresh, the step at 0, dropout's RNG
states from this run's seed. A text embedding is only read from a run whose vocabulary
(the same ids for the same pieces) was the same: the vocabularies' fingerprints are in
each run's `model.json`. A run that has a checkpoint of its own resumes from it and
never reads `init_from` again (trainer.Trainer._train)."""

import dataclasses
import hashlib
import json
import os
import re
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from onemodel import checkpoints
from onemodel import fileio
from onemodel import vocab as vocab_lib
from onemodel.errors import UserError

MODEL_RECORD = "model.json"  # a run's problems (task-embedding rows) and vocabularies
RECORD = "warm_start.json"  # where a warm-started run started from


@dataclasses.dataclass
class Component:
  """A named group of model variables loaded (or not) together."""
  name: str
  kind: str  # 'backbone' | 'adapter' | 'task' | 'rng'
  variables: List[tf.Variable]
  fingerprint: str = ""  # the vocabulary an embedding's rows mean ('' : none)


def fingerprint(vocab: Optional[vocab_lib.Vocab], class_names=()) -> str:
  """What the rows of an embedding mean: a hash of the vocabulary's saved form (or of
  the class names of a label target)."""
  if vocab is not None and not hasattr(vocab, "save_bytes"):
    return ""  # a vocabulary that cannot say what it is: not checked
  data = vocab.save_bytes() if vocab is not None else "\n".join(class_names).encode()
  return hashlib.sha256(data).hexdigest()[:16]


def components(model, vocabs: Dict[str, Optional[vocab_lib.Vocab]]) -> List[Component]:
  """The model's variables by component; a variable shared by two components (the
  embedding of a text -> text problem) belongs to the first."""
  out, seen = [], set()
  rng = set(checkpoints.rng_state_paths(model))

  def add(name, kind, variables, fp=""):
    own = [v for v in variables if id(v) not in seen and id(v) not in rng]
    seen.update(id(v) for v in own)
    if own:
      out.append(Component(name, kind, own, fp))

  add("backbone", "backbone", model.backbone.variables)
  keys = {key: p for p, key in model._target_key.items()}  # pylint: disable=protected-access
  for key, emb in model.embeddings.items():
    p = model.problems[keys[key]]
    add(emb.name, "adapter", emb.variables,
        fingerprint(vocabs.get(p.name) if p.targets.modality == "text" else None,
                    p.targets.class_names or ()))
  for name, layer in model.input_adapters.items():
    p = model.problems[name]
    fp = fingerprint(vocabs.get(name)) if p.inputs.modality == "text" else ""
    add(layer.name, "adapter", layer.variables, fp)
  add("task_embedding", "task", [model.task_embedding])
  rest = [v for v in model.variables if id(v) not in seen and id(v) not in rng]
  add("other", "adapter", rest)
  return out


def write_model_record(run_dir, model, vocabs) -> None:
  """OUTPUT_DIR/model.json: what a later warm start from this run needs to know."""
  run_dir.write_json(MODEL_RECORD, {
      "problems": list(model.task_index),
      "fingerprints": {c.name: c.fingerprint for c in components(model, vocabs)
                       if c.fingerprint}})


def check_record(run_dir, model, vocabs) -> None:
  """A run's checkpoints hold embeddings whose rows mean its vocabularies' pieces: read
  with other vocabularies (another --data_dir, or a mixture whose vocabularies changed),
  every id would mean another piece and nothing would say so. One UserError instead,
  naming the component, when a run with checkpoints records another fingerprint in
  OUTPUT_DIR/model.json."""
  path = run_dir.join(MODEL_RECORD)
  if not (tf.io.gfile.exists(path) and
          tf.train.latest_checkpoint(run_dir.join("checkpoints"))):
    return
  recorded = json.loads(fileio.read_text(path)).get("fingerprints", {})
  for c in components(model, vocabs):
    if c.fingerprint and recorded.get(c.name, c.fingerprint) != c.fingerprint:
      raise UserError(
          f"run {run_dir.path} was trained with another vocabulary for {c.name} than "
          f"this one reads (fingerprint {recorded[c.name]} in {MODEL_RECORD}, "
          f"{c.fingerprint} here): use the --data_dir (and text_vocab binding) it was "
          "trained with, or a new --output_dir; a mixture with a text classifier trained "
          "before 2026-12-08 shared its vocabulary and must be trained anew")


def checkpoint_path(init_from: str) -> str:
  """A run directory, a checkpoints directory or a checkpoint prefix -> the prefix."""
  if tf.io.gfile.exists(init_from + ".index"):
    return init_from
  for d in (os.path.join(init_from, "checkpoints"), init_from):
    if tf.io.gfile.isdir(d):
      latest = tf.train.latest_checkpoint(d)
      if latest:
        return latest
  raise UserError(f"gin binding TrainConfig.init_from={init_from!r}: no checkpoint there "
                  "(give a run directory, a checkpoints directory such as "
                  "RUN/checkpoints/best, or a prefix such as RUN/checkpoints/ckpt-1000)")


def _source_record(prefix: str) -> dict:
  """The source run's model.json (found above its checkpoint), or {}."""
  d = os.path.dirname(prefix)
  for _ in range(3):  # RUN/checkpoints[/best]/ckpt-N
    path = os.path.join(d, MODEL_RECORD)
    if tf.io.gfile.exists(path):
      return json.loads(fileio.read_text(path))
    d = os.path.dirname(d)
  return {}


def _key(path: str) -> str:
  """A model variable's path -> its entry in a checkpoint of `Trainer.checkpoint`
  (tf.train.Checkpoint escapes '.' as '..' and '/' as '.S' in object names)."""
  return "weights/" + path.replace(".", "..").replace("/", ".S") + \
      "/.ATTRIBUTES/VARIABLE_VALUE"


def load(model, vocabs, init_from: str, scope: str, problems: List[str],
         verbose: bool = True) -> dict:
  """Assigns the weights `scope` takes from `init_from` -> the record of what was
  loaded, new and skipped (also printed as one table). Refuses, with one line, a
  checkpoint whose variable has another shape here, or one that gives nothing."""
  prefix = checkpoint_path(init_from)
  try:
    reader = tf.train.load_checkpoint(prefix)
  except (tf.errors.OpError, ValueError) as e:
    raise UserError(f"gin binding TrainConfig.init_from={init_from!r}: checkpoint {prefix} "
                    f"cannot be read ({str(e).strip().splitlines()[0][:160]})") from e
  shapes = {k: v for k, v in reader.get_variable_to_shape_map().items()
            if k.startswith("weights/") and "seed_generator_state" not in k}
  source = _source_record(prefix)
  source_problems = source.get("problems")
  rows = {}  # table rows: component -> (status, variables, weights)
  used, assigns = set(), []

  def note(name, status, variables):
    rows[name] = (status, len(variables), sum(int(np.prod(v.shape)) for v in variables))

  for c in components(model, vocabs):
    wanted = scope == "all" or c.kind == "backbone" or (
        scope == "backbone_and_adapters" and c.kind in ("adapter", "task"))
    if c.kind == "task":
      found = _task_rows(reader, shapes, c.variables[0], problems, source_problems, used)
      if found is None:
        note("task_embedding", "new", c.variables)
      elif wanted:
        assigns.append((c.variables[0], found[0]))
        rows["task_embedding"] = (
            "loaded" if found[1] == len(problems) else
            f"loaded {found[1]} of {len(problems)} rows", 1,
            int(np.prod(c.variables[0].shape)))
      else:
        note("task_embedding", "new", c.variables)
      continue
    keys = [_key(v.path) for v in c.variables]
    present = [k in shapes for k in keys]
    if not any(present) or not wanted:
      note(c.name, "new", c.variables)
      continue
    if not all(present):
      missing = c.variables[present.index(False)].path
      raise UserError(f"warm start from {prefix}: {c.name} is only partly there ({missing} "
                      "is missing): the two runs build this part differently")
    for v, k in zip(c.variables, keys):
      if list(shapes[k]) != list(v.shape):
        raise UserError(f"warm start from {prefix}: {v.path} has shape {list(shapes[k])} "
                        f"there and {list(v.shape)} here (a different model or vocabulary "
                        "size); keep the model's settings or narrow TrainConfig.init_scope")
    source_fp = source.get("fingerprints", {}).get(c.name, "")
    if c.fingerprint and source_fp and source_fp != c.fingerprint:
      note(c.name, "new (another vocabulary there)", c.variables)
      continue
    used.update(keys)
    assigns.extend((v, reader.get_tensor(k)) for v, k in zip(c.variables, keys))
    note(c.name, "loaded", c.variables)
  if not assigns:
    raise UserError(f"warm start from {prefix}: nothing of this model's "
                    f"{scope.replace('_', ' ')} is in that checkpoint")
  new = [n for n, (status, _, _) in rows.items() if not status.startswith("loaded")]
  if scope == "all" and new:
    raise UserError(f"warm start from {prefix} with TrainConfig.init_scope='all': "
                    f"{', '.join(new)} not there; use 'backbone_and_adapters' to start "
                    "those fresh")
  for v, value in assigns:
    v.assign(value)
  skipped = _skipped(shapes, used)
  record = {"init_from": init_from, "checkpoint": prefix, "scope": scope,
            "components": {n: {"status": s, "variables": nv, "weights": nw}
                           for n, (s, nv, nw) in rows.items()},
            "skipped": skipped}
  if verbose:
    print(table(record), flush=True)
  return record


def _task_rows(reader, shapes, variable, problems, source_problems, used):
  """The task embedding's rows of the problems both runs train -> (value, rows found),
  or None. Without the source's problem list, only a table of the same shape is read."""
  key = _key(variable.path)
  if key not in shapes:
    return None
  there = reader.get_tensor(key)
  value = variable.numpy().copy()
  if source_problems is None:
    if list(there.shape) != list(value.shape):
      return None
    used.add(key)
    return there, len(problems)
  found = 0
  for i, name in enumerate(problems):
    if name in source_problems and source_problems.index(name) < there.shape[0]:
      value[i] = there[source_problems.index(name)]
      found += 1
  if not found:
    return None
  used.add(key)
  return value, found


def _skipped(shapes, used) -> Dict[str, int]:
  """Checkpoint weights not read, by component (the first path element below one_model)
  -> variables."""
  out = {}
  for k in sorted(set(shapes) - used):
    parts = _unescape(k[len("weights/"):].split("/.ATTRIBUTES")[0]).split("/")
    name = parts[1] if parts[0] == "one_model" and len(parts) > 1 else parts[0]
    name = "backbone" if name.split("_")[0] in ("encoder", "decoder") else name
    out[name] = out.get(name, 0) + 1
  return out


def _unescape(name: str) -> str:
  """Inverse of the escaping in `_key`."""
  return re.sub(r"\.(.)", lambda m: "/" if m.group(1) == "S" else m.group(1), name)


def table(record: dict) -> str:
  """The printed table: component, status, variables, weights; then what was skipped."""
  lines = [f"warm start from {record['checkpoint']} (init_scope "
           f"{record['scope']!r}; optimizer fresh, step 0):"]
  width = max(len(n) for n in list(record["components"]) + list(record["skipped"])) + 2
  for name, c in record["components"].items():
    lines.append(f"  {name:<{width}}{c['status']:<32}{c['variables']:>5} variables "
                 f"{c['weights']:>11,} weights")
  for name, n in record["skipped"].items():
    lines.append(f"  {name:<{width}}{'skipped':<32}{n:>5} variables")
  return "\n".join(lines)


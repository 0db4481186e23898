"""The per-replica training step: loss normalization, accumulation, clipping; no I/O.

Written for `strategy.run` (Orbit's shape): each replica computes its loss divided by the
token count of the *global* batch (all replicas, all accumulated micro-batches), so the
strategy's sum of replica gradients is the gradient of the global mean loss.
"""

import tensorflow as tf

from onemodel import model as model_lib
from onemodel import moe
from onemodel import noise_scale as noise_scale_lib
from onemodel import optim
from onemodel import throughput


def build_step_fn(model, optimizer, problem: str, *, grad_accum_steps: int = 1,
                  label_smoothing: float = 0.0, clipnorm: float = 0.0,
                  use_moe: bool = False, measure_noise: bool = False,
                  jit_compile: bool = False):
  """One replica's training step (one optimizer update) on `problem`: the only place
  gradients are taken. With grad_accum_steps = k the batch holds k micro-batches
  ([k, b, ...]); their gradients are summed before the update, each micro-batch's loss
  divided by the token count of all k micro-batches of all replicas, so the update
  equals that of one batch k times larger. -> step_fn(batch) -> {statistic: scalar}."""
  opt, name, ls, k = optimizer, problem, label_smoothing, grad_accum_steps
  variables = model.trainable_variables

  def micro_step(batch, global_tokens):
    """-> (loss_sum, tokens, gradients or None per variable, MoE statistics)."""
    with tf.GradientTape() as tape:
      if use_moe:
        moe.reset_aux(model)
      logits = model(batch, problem=name, training=True)
      loss_sum, tokens = model_lib.token_loss(logits, batch["targets"], ls)
      loss = loss_sum / tf.maximum(global_tokens, 1.0)
      aux = moe.collect_aux(model) if use_moe else None
      if use_moe:
        ctx = tf.distribute.get_replica_context()
        loss += aux["loss"] / (ctx.num_replicas_in_sync * k)
    return loss_sum, tokens, tape.gradient(loss, variables), aux

  def step_fn(batch):
    ctx = tf.distribute.get_replica_context()
    local_tokens = tf.reduce_sum(tf.cast(batch["targets"] != 0, tf.float32))
    # Normalize by the token count of the *global* batch: the strategy sums the
    # replicas' gradients, so this yields the gradient of the global mean loss.
    global_tokens = ctx.all_reduce(tf.distribute.ReduceOp.SUM, local_tokens)
    micro = (lambda j: tf.nest.map_structure(lambda x: x[j], batch)) if k > 1 else \
        (lambda j: batch)
    loss_sum, tokens, grads, aux = micro_step(micro(0), global_tokens)
    live = [i for i, g in enumerate(grads) if g is not None]  # static per problem
    acc = [tf.convert_to_tensor(grads[i]) for i in live]
    sq_small = noise_scale_lib.squared_norm(acc) * (global_tokens / tokens) ** 2 \
        if measure_noise else tf.constant(0.0)
    dropped = aux["dropped_tokens"] if use_moe else tf.constant(0.0)
    routed = aux["routed_tokens"] if use_moe else tf.constant(0.0)
    if k > 1:
      for j in tf.range(1, k):
        l_j, t_j, g_j, aux_j = micro_step(micro(j), global_tokens)
        acc = [a + tf.convert_to_tensor(g_j[i]) for a, i in zip(acc, live)]
        loss_sum, tokens = loss_sum + l_j, tokens + t_j
        if measure_noise:
          sq_small += noise_scale_lib.squared_norm(
              [g_j[i] for i in live]) * (global_tokens / t_j) ** 2
        if use_moe:
          dropped += aux_j["dropped_tokens"]
          routed += aux_j["routed_tokens"]
    stats = {}
    if measure_noise:  # per-replica estimates; the loop sums them, Python averages
      stats.update(ns_small=sq_small / k, ns_bsmall=tokens / k,
                   ns_big=noise_scale_lib.squared_norm(acc) * (global_tokens / tokens) ** 2,
                   ns_bbig=tokens, ns_count=tf.constant(1.0))
    if use_moe:
      stats.update(moe_dropped=dropped, moe_routed=routed)
    grads = [None] * len(variables)
    for i, g in zip(live, acc):
      grads[i] = g
    if clipnorm:
      clipped = optim.clip_global_gradient([grads[i] for i in live], clipnorm)
      for i, g in zip(live, clipped):
        grads[i] = g
    opt.apply_gradients([(grads[i], variables[i]) for i in live])
    stats.update(batch_stats(model, name, micro(0), batch, k), loss_sum=loss_sum,
                 tokens=tokens)
    return stats

  if jit_compile:
    step_fn = tf.function(step_fn, jit_compile=True)
  return step_fn


def build_summed_step_fn(model, optimizer, problems, label_smoothing, *,
                         clipnorm: float = 0.0, jit_compile: bool = False):
  """One replica's training step on every problem of `problems` at once
  (TrainConfig.mixture_update='summed'): one optimizer update from the sum of their
  gradients, problem i's mean token loss over its global batch weighted by weights[i].
  Weights are the mixture's rates, so the update's expectation is that of a step on a
  problem drawn by them. -> step_fn(batches, weights) -> [{statistic: scalar}] per
  problem, in `problems` order."""
  variables = model.trainable_variables

  def step_fn(batches, weights):
    ctx = tf.distribute.get_replica_context()
    summed, out = [None] * len(variables), []
    for i, (name, batch) in enumerate(zip(problems, batches)):
      local_tokens = tf.reduce_sum(tf.cast(batch["targets"] != 0, tf.float32))
      global_tokens = ctx.all_reduce(tf.distribute.ReduceOp.SUM, local_tokens)
      with tf.GradientTape() as tape:  # one problem's graph at a time: less memory
        logits = model(batch, problem=name, training=True)
        loss_sum, tokens = model_lib.token_loss(logits, batch["targets"],
                                                label_smoothing[i])
        loss = weights[i] * loss_sum / tf.maximum(global_tokens, 1.0)
      for j, g in enumerate(tape.gradient(loss, variables)):
        if g is not None:
          g = tf.convert_to_tensor(g)
          summed[j] = g if summed[j] is None else summed[j] + g
      out.append(dict(batch_stats(model, name, batch, batch, 1), loss_sum=loss_sum,
                      tokens=tokens))
    live = [j for j, g in enumerate(summed) if g is not None]
    grads = [summed[j] for j in live]
    if clipnorm:
      grads = optim.clip_global_gradient(grads, clipnorm)
    optimizer.apply_gradients([(g, variables[j]) for g, j in zip(grads, live)])
    return out

  if jit_compile:
    step_fn = tf.function(step_fn, jit_compile=True)
  return step_fn


def batch_stats(model, name, one, batch, k):
  """The shapes (for the FLOP count) and examples of one update's batch: `one` is a
  micro-batch of the k in `batch`."""
  shape = tf.shape(one["targets"])
  stats = throughput.batch_shapes(model.encoded_length(name, one), shape[1], shape[0] * k)
  examples = tf.cast(shape[0] * k, tf.float32)
  if "targets_segment_ids" in one:  # packed rows: count the examples in them
    examples = tf.reduce_sum(tf.reduce_max(tf.cast(batch["targets_segment_ids"],
                                                   tf.float32), axis=-1))
  return dict(stats, examples=examples)


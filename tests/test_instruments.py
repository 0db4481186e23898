"""The research switches wired through the trainer: gradient accumulation (the same update
as one large batch), online noise scale, MoE FFN, pruning with checkpointed masks,
sequence packing and bf16 — each on a tiny model and real data."""

import json
import os

import gin
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT
from onemodel import model as model_lib
from onemodel import precision
from onemodel import trainer as trainer_lib
from onemodel.errors import UserError


def _trainer(tmp_path, data_dir, manual_dir, *bindings, problem="mnist", steps=4):
  gin.parse_config_files_and_bindings([os.path.join(ROOT, "gin/models/tiny.gin")], [
      f"TrainConfig.problem = '{problem}'", f"TrainConfig.train_steps = {steps}",
      "TrainConfig.batch_size = 8", "TrainConfig.steps_per_loop = 2",
      "TrainConfig.log_every_steps = 2", "TrainConfig.final_eval_role = ''",
      "TrainConfig.report_mfu = False", "TrainConfig.deterministic = True", *bindings])
  return trainer_lib.Trainer(str(tmp_path), data_dir, manual_dir)


def test_accumulated_update_equals_the_large_batch_update(tmp_path, data_dir, manual_dir):
  t = _trainer(tmp_path, data_dir, manual_dir, "TrainConfig.grad_accum_steps = 4",
               "optimizer.name = 'sgd'", "optimizer.beta_1 = 0.0", "optimizer.clipnorm = 0.0",
               "learning_rate_schedule.decay = 'constant'",
               "learning_rate_schedule.warmup_steps = 0",
               "learning_rate_schedule.learning_rate = 0.5")
  batch = next(iter(t.dataset(tf.distribute.InputContext(), t.problem)))     # [4, 8, ...]
  assert batch["targets"].shape[:2] == (4, 8)
  variables = t.model.trainable_variables
  w0 = [v.numpy() for v in variables]
  lr = float(t.optimizer.learning_rate)
  step = tf.function(t.step_fn(0))
  t.strategy.run(step, (batch,))
  accumulated = [v.numpy() for v in variables]

  # The same update from one batch of 32, by hand: w - lr * grad(mean token loss).
  for v, w in zip(variables, w0):
    v.assign(w)
  big = {k: tf.reshape(x, [-1] + x.shape[2:].as_list()) for k, x in batch.items()}
  with tf.GradientTape() as tape:
    loss_sum, tokens = model_lib.token_loss(t.model(big, problem="mnist", training=True),
                                            big["targets"])
    loss = loss_sum / tokens
  grads = tape.gradient(loss, variables)
  moved = 0
  for w, g, a in zip(w0, grads, accumulated):
    expected = w if g is None else w - lr * tf.convert_to_tensor(g).numpy()
    np.testing.assert_allclose(a, expected, rtol=1e-4, atol=1e-6)
    moved += g is not None and not np.allclose(a, w)
  assert moved > 10


def test_noise_scale_moe_and_pruning_through_the_trainer(tmp_path, data_dir, manual_dir):
  t = _trainer(tmp_path, data_dir, manual_dir, "TrainConfig.grad_accum_steps = 2",
               "TrainConfig.noise_scale = True", "BackboneConfig.ffn = 'moe'",
               "BackboneConfig.num_experts = 4", "BackboneConfig.capacity_factor = 1.0",
               "PruningConfig.target_sparsity = 0.75", "PruningConfig.begin_step = 0",
               "PruningConfig.end_step = 4", "PruningConfig.frequency = 2", steps=6)
  t.train()
  report = json.load(open(tmp_path / "instruments.json"))
  assert report["critical_batch_tokens"] > 0
  assert abs(report["sparsity"]["total"] - 0.75) < 0.01
  # Top-1 of 4 experts: ~4x the FFN parameters at about the dense FLOPs per token.
  assert report["moe"]["ratio"]["params"] > 2.0
  assert 1.0 <= report["moe"]["ratio"]["flops_per_token"] < 1.1
  kernels = [v for v in t.pruner._weights.items]
  zeros = sum(int(np.sum(v.numpy() == 0)) for v in kernels)
  assert zeros >= 0.74 * sum(int(np.prod(v.shape)) for v in kernels)
  assert t.model_uses_moe() and "moe_dropped" in t.stat_keys
  # The checkpoint names every model weight by its path (not only via the optimizer).
  names = [n for n, _ in tf.train.list_variables(t.manager.latest_checkpoint)]
  assert any(n.startswith("weights/") and "encoder_0" in n for n in names)

  # Resuming restores the masks and the pruned weights stay zero.
  gin.clear_config()
  t2 = _trainer(tmp_path, data_dir, manual_dir, "TrainConfig.grad_accum_steps = 2",
                "TrainConfig.noise_scale = True", "BackboneConfig.ffn = 'moe'",
                "BackboneConfig.num_experts = 4",
                "PruningConfig.target_sparsity = 0.75", "PruningConfig.begin_step = 0",
                "PruningConfig.end_step = 4", "PruningConfig.frequency = 2", steps=8)
  t2.train()
  assert abs(t2.pruner.sparsity_report()["total"] - 0.75) < 0.01
  for v, m in t2.pruner._pairs():
    assert np.all(v.numpy()[m.numpy() == 0] == 0)


def test_packed_training_counts_examples_not_rows(tmp_path, data_dir, manual_dir, capsys):
  t = _trainer(tmp_path, data_dir, manual_dir, "TrainConfig.pack = True",
               problem="multi30k_en_de")
  out = t.train()
  assert np.isfinite(out["loss"])
  line = [l for l in capsys.readouterr().out.splitlines() if l.startswith("step 4/4")][0]
  ex_per_s = float(line.split(" ex/s")[0].split("| ")[-1])
  steps_per_s = float(line.split(" steps/s")[0].split("| ")[-1])
  assert ex_per_s > 8 * steps_per_s * 1.5  # several Multi30k sentences per 64-token row


def test_bf16_training_runs_and_config_errors_name_the_binding(tmp_path, data_dir,
                                                               manual_dir):
  try:
    t = _trainer(tmp_path, data_dir, manual_dir, "precision.policy = 'mixed_bfloat16'")
    assert np.isfinite(t.train()["loss"])
    assert t.model.backbone.encoder_layers[0].ffn.inner.compute_dtype == "bfloat16"
  finally:
    precision.reset()
  gin.clear_config()
  with pytest.raises(UserError, match="TrainConfig.noise_scale=True needs two batch sizes"):
    _trainer(tmp_path, data_dir, manual_dir, "TrainConfig.noise_scale = True")
  gin.clear_config()
  with pytest.raises(UserError, match="TrainConfig.pack=True: problem mnist has non-text"):
    _trainer(tmp_path, data_dir, manual_dir, "TrainConfig.pack = True")

"""`onemodel-eval --follow` beside a training run in another process: it evaluates every
checkpoint the trainer writes, keeps the best, and exits after the final one; the
trainer runs undisturbed."""

import json
import os
import subprocess

import tensorflow as tf

from conftest import BIN, ROOT, cli, one_line_error, train_args

STEPS, EVERY = 40, 10


def _train_args(out, data_dir, manual_dir):
  params = ["TrainConfig.problem='mnist'", f"TrainConfig.train_steps={STEPS}",
            "TrainConfig.batch_size=16", "TrainConfig.log_every_steps=10",
            "TrainConfig.steps_per_loop=5", f"TrainConfig.checkpoint_every_steps={EVERY}",
            "TrainConfig.keep_checkpoints=10", "TrainConfig.final_eval_role=''",
            "TrainConfig.eval_max_examples=64", "TrainConfig.eval_batch_size=64",
            "TrainConfig.report_mfu=False"]
  return train_args(out, data_dir, manual_dir, params)


def test_follow_evaluates_every_checkpoint_of_a_running_trainer(tmp_path, data_dir,
                                                                manual_dir):
  out = str(tmp_path / "run")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  # Started first: it waits for the run to appear, then for each checkpoint.
  follower = subprocess.Popen(
      [os.path.join(BIN, "onemodel-eval"), f"--output_dir={out}", "--follow",
       "--follow_timeout_s=120", f"--data_dir={data_dir}"],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    rc, _, se = cli("onemodel-train", *_train_args(out, data_dir, manual_dir))
    assert rc == 0, se[-3000:]
    so, se = follower.communicate(timeout=400)
  finally:
    follower.kill()
  assert follower.returncode == 0, se[-3000:]
  report = json.loads(so.strip().splitlines()[-1])
  steps = list(range(EVERY, STEPS + 1, EVERY))
  assert report["evaluated_steps"] == steps, so
  for step in steps:
    metrics = json.load(open(os.path.join(out, f"metrics_eval_follow_step{step}.json")))
    assert metrics["split"] == "eval" and "accuracy" in metrics["metrics"]
  best = json.load(open(os.path.join(out, "checkpoints", "best", "best.json")))
  accs = {h["step"]: h["values"]["mnist/accuracy"] for h in best["history"]}
  assert sorted(accs) == steps
  assert best["step"] == max(steps, key=lambda s: (accs[s], -s))
  assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")).endswith(
      f"ckpt-{STEPS}")
  assert os.path.isdir(os.path.join(out, "eval_follow"))  # its TensorBoard summaries
  # Started again on the finished run: nothing left to evaluate, it ends at once.
  rc, so, se = cli("onemodel-eval", f"--output_dir={out}", "--follow",
                   f"--data_dir={data_dir}")
  assert rc == 0, se[-2000:]
  assert json.loads(so.strip().splitlines()[-1])["evaluated_steps"] == []


def test_follow_of_a_run_that_never_appears_ends_with_one_line(tmp_path, data_dir):
  rc, _, se = cli("onemodel-eval", f"--output_dir={tmp_path / 'nothing'}", "--follow",
                  "--follow_timeout_s=3", f"--data_dir={data_dir}")
  one_line_error(rc, se, "--follow", "no training run appeared")

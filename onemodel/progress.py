"""The progress line: step, loss, steps/s, examples/s, target tokens/s, MFU, ETA."""

import time

import tensorflow as tf

from onemodel import throughput


class Progress:
  """One line per `log_every_steps`: step, loss, steps/s, examples/s, target tokens/s,
  MFU against the measured matmul peak, and ETA (also on a non-TTY)."""

  def __init__(self, total: int, start_step: int, peak_gflops: float = 0.0, cfg=None,
               vocab_sizes=(0,)):
    self.total, self.start_step, self.t0 = total, start_step, time.time()
    self.last_t, self.last_step = self.t0, start_step
    self.peak, self.cfg, self.vocab_sizes = peak_gflops, cfg, list(vocab_sizes)
    self.sums, self.flops = {}, 0.0

  def add(self, stats, problem_index: int = 0):
    """Adds summed step statistics of one problem's steps."""
    for k, v in stats.items():
      self.sums[k] = self.sums.get(k, 0.0) + v
    if self.peak and self.cfg is not None and "enc_tokens" in stats:
      self.flops += throughput.step_flops(self.cfg, stats, self.vocab_sizes[problem_index])

  def update(self, step: int, loss: float, extra: str = ""):
    now = time.time()
    dt = max(now - self.last_t, 1e-9)
    rate = (step - self.last_step) / dt
    self.last_t, self.last_step = now, step
    eta = (self.total - step) / max(rate, 1e-9)
    scalars, shown = {}, ""
    if self.sums:
      scalars = {"examples_per_sec": self.sums.get("examples", 0.0) / dt,
                 "tokens_per_sec": self.sums.get("tokens", 0.0) / dt}
      shown = (f" | {scalars['examples_per_sec']:.0f} ex/s | "
               f"{scalars['tokens_per_sec']:.0f} tok/s")
      if self.peak and self.cfg is not None:
        scalars["model_gflops_per_sec"] = self.flops / dt / 1e9
        scalars["mfu"] = scalars["model_gflops_per_sec"] / self.peak
        shown += f" | MFU {100 * scalars['mfu']:.0f}%"
      self.sums, self.flops = {}, 0.0
    print(f"step {step}/{self.total} | loss {loss:.4f} | {rate:.2f} steps/s{shown} | "
          f"ETA {int(eta // 60)}m{int(eta % 60):02d}s{extra}", flush=True)
    return rate, scalars


def scalar_logger(writer, optimizer):
  """-> log_scalars(step, loss, steps_per_sec, extra): a progress line's numbers and the
  optimizer's current learning rate as TensorBoard scalars of `writer`."""

  def log_scalars(step, loss, rate, extra):
    lr = optimizer.learning_rate
    lr = float(lr.numpy() if hasattr(lr, "numpy") else lr)
    with writer.as_default():
      for name, value in dict(loss=loss, steps_per_sec=rate, learning_rate=lr,
                              **extra).items():
        tf.summary.scalar(name, value, step=step)

  return log_scalars

"""The research instruments, as hooks the controller calls the same way under every
strategy (synchronous or parameter-server).

Each hook sees the summed statistics of every chunk of steps (`add`), contributes
scalars and a short text to each log line (`log`, which also starts a new interval), and
to the end-of-run summary (`summary`, written to instruments.json). A hook whose state
shapes what it reports later (the noise-scale averages) keeps it in variables that are
part of the checkpoint, so a resumed run reports what an uninterrupted one would.
"""

from typing import Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from onemodel import moe
from onemodel import noise_scale as noise_scale_lib


class Hook:
  def add(self, stats: Dict[str, float], problem_index: int) -> None:
    pass

  def log(self, step: int) -> Tuple[Dict[str, float], str]:
    return {}, ""

  def summary(self) -> Dict:
    return {}


class NoiseScaleHook(Hook, tf.Module):
  """Gradient noise scale B_simple (McCandlish et al. 2018, arXiv:1812.06162, App. A)."""
  KEYS = ("ns_small", "ns_bsmall", "ns_big", "ns_bbig", "ns_count")

  def __init__(self):
    tf.Module.__init__(self, name="noise_scale")
    self.est = noise_scale_lib.NoiseScale()
    # The averages, checkpointed (float64: the EMA must resume bit for bit).
    self.count = tf.Variable(0, dtype=tf.int64, trainable=False, name="count")
    self.ema = tf.Variable(tf.zeros([2], tf.float64), trainable=False, name="ema")

  def load(self):
    """After a restore: the estimator continues from the checkpointed averages."""
    g2, trace = self.ema.numpy().tolist()
    self.est.count, self.est._g2, self.est._trace = int(self.count.numpy()), g2, trace

  def add(self, stats, problem_index):
    c = stats.get("ns_count", 0.0)
    if c:
      self.est.update(stats["ns_small"] / c, stats["ns_bsmall"] / c, stats["ns_big"] / c,
                      stats["ns_bbig"] / c)
      self.count.assign(self.est.count)
      self.ema.assign([self.est._g2, self.est._trace])

  def log(self, step):
    if self.est.b_simple is None or not np.isfinite(self.est.b_simple):
      return {}, ""
    return ({"noise_scale_tokens": self.est.b_simple, "grad_sq_norm": self.est.g2,
             "grad_trace_sigma": self.est.trace_sigma},
            f" | B_simple {self.est.b_simple:.0f} tok")

  def summary(self):
    b = self.est.b_simple
    if b is None or not np.isfinite(b):
      return {}
    print(f"gradient noise scale: critical batch size ~ {b:.0f} target tokens "
          "(B_simple = tr(Sigma)/|G|^2, McCandlish et al. 2018)", flush=True)
    return {"critical_batch_tokens": b, "noise_scale": self.est.state()}


class MoEHook(Hook):
  """Tokens a mixture-of-experts layer dropped over capacity, per log interval."""
  KEYS = ("moe_dropped", "moe_routed")

  def __init__(self, backbone_cfg):
    self.cfg, self.sums = backbone_cfg, [0.0, 0.0]

  def add(self, stats, problem_index):
    self.sums[0] += stats.get("moe_dropped", 0.0)
    self.sums[1] += stats.get("moe_routed", 0.0)

  def log(self, step):
    dropped, routed = self.sums
    self.sums = [0.0, 0.0]
    if not routed:
      return {}, ""
    return ({"moe_dropped_fraction": dropped / routed},
            f" | MoE dropped {100 * dropped / routed:.1f}%")

  def summary(self):
    pf = moe.params_and_flops(self.cfg)
    print(f"mixture of experts: backbone parameters {pf['moe']['params']:,.0f} (dense "
          f"{pf['dense']['params']:,.0f}, x{pf['ratio']['params']:.2f}), forward FLOPs "
          f"per token {pf['moe']['flops_per_token']:,.0f} (dense "
          f"{pf['dense']['flops_per_token']:,.0f}, x{pf['ratio']['flops_per_token']:.2f})",
          flush=True)
    return {"moe": pf}


class PruningHook(Hook):
  """Achieved sparsity per pruned kernel (the masks are updated inside the step)."""

  def __init__(self, pruner):
    self.pruner = pruner

  def log(self, step):
    report = self.pruner.sparsity_report()
    return ({f"sparsity/{k}": v for k, v in report.items()},
            f" | sparsity {100 * report['total']:.0f}%")

  def summary(self):
    report = self.pruner.sparsity_report()
    print("pruning: achieved sparsity " + ", ".join(
        f"{k} {100 * v:.0f}%" for k, v in sorted(report.items())), flush=True)
    return {"sparsity": report}


class StalenessHook(Hook):
  """Parameter-server training: updates other workers applied between a step reading
  the weights and applying its gradients, averaged over the log interval."""
  KEYS = ("stale", "count")

  def __init__(self):
    self.sums, self.total = [0.0, 0.0], [0.0, 0.0]

  def add(self, stats, problem_index):
    for i, k in enumerate(self.KEYS):
      self.sums[i] += stats.get(k, 0.0)
      self.total[i] += stats.get(k, 0.0)

  def log(self, step):
    stale = self.sums[0] / max(self.sums[1], 1.0)
    self.sums = [0.0, 0.0]
    return {"staleness": stale}, f" | staleness {stale:.2f}"

  def summary(self):
    return {"staleness": self.total[0] / max(self.total[1], 1.0)}


class MixtureHook(Hook):
  """Per-problem training loss over the log interval, and the fraction of all steps
  each problem received so far (to check the mixing rates)."""

  def __init__(self, names: Sequence[str], problem_steps: tf.Variable):
    self.names, self.problem_steps = list(names), problem_steps
    self.sums: Dict[int, List[float]] = {}

  def add(self, stats, problem_index):
    s = self.sums.setdefault(problem_index, [0.0, 0.0])
    s[0] += stats["loss_sum"]
    s[1] += stats["tokens"]

  def log(self, step):
    counts = self.problem_steps.numpy()
    total = max(step, 1)  # 'summed' updates count for every problem they train
    scalars, shown = {}, []
    for i, name in enumerate(self.names):
      scalars[f"steps_fraction/{name}"] = counts[i] / total
      if i in self.sums:
        scalars[f"loss/{name}"] = self.sums[i][0] / max(self.sums[i][1], 1.0)
      shown.append(f"{name} {100 * counts[i] / total:.0f}%")
    self.sums = {}
    return scalars, " | steps " + " ".join(shown)

"""Time to target against chips (log-log): the planner's sync and async curves for one
workload and machine, and the published records on the same axes."""

from typing import List, Optional


def plot(path: str, curves: List[dict], records: Optional[list] = None, title: str = ""):
  """curves: [{'label', 'chips': [...], 'time_s': [...]}]; records: [(label, chips,
  reported_s, predicted_s or None)]."""
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError as e:
    from onemodel.errors import UserError
    raise UserError("--plot needs matplotlib (pip install 'onemodel[bench]')") from e
  fig, ax = plt.subplots(figsize=(11, 5.5))
  for c in curves:
    ax.plot(c["chips"], c["time_s"], marker="o", ms=3, label=c["label"],
            ls=c.get("ls", "-"))
  if records:
    markers = {"resnet50_imagenet": "s", "transformer_big_wmt14": "^", "bert_large": "D"}
    seen = set()
    for label, chips, reported, predicted, workload in records:
      mk = markers.get(workload, "x")
      lab = f"published: {workload}" if workload not in seen else None
      seen.add(workload)
      ax.scatter([chips], [reported], marker=mk, facecolors="none", edgecolors="k",
                 label=lab, zorder=3)
      if predicted:
        ax.plot([chips, chips], [reported, predicted], color="grey", lw=0.8, zorder=2)
        ax.scatter([chips], [predicted], marker=mk, color="tab:red", s=12, zorder=3,
                   label="planner's prediction of a record" if "pred" not in seen else None)
        seen.add("pred")
  ax.set_xscale("log", base=2)
  ax.set_yscale("log")
  ax.set_xlabel("chips")
  ax.set_ylabel("time to target (s)")
  ax.grid(True, which="both", alpha=0.3)
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)

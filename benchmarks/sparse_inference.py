"""Does block sparsity from onemodel.pruning make CPU inference faster? Measured, not
counted: the inference matmul y = x @ W of a magnitude-pruned kernel, timed with several
kernels against the dense matmul with zeros (what onemodel runs today).

Command (worktree root; about 11 min on 2 cores):

  PYTHONPATH=. python benchmarks/sparse_inference.py \
      --out benchmarks/results/sparse_inference.md

Flags: --shapes 256x1024,1024x256,1024x1024 (kernel [d_in, d_out]), --rows 2048,32 (tokens
in the batch: 64x32 training-size batch, 32-row decode step), --sparsities 0.5,0.75,0.9
(0 is always measured once as a control), --blocks 1x1,1x4,4x4,colx1 (`colx1` = block
(d_in, 1): whole output columns, i.e. neuron pruning, the structure the compaction method
needs), --reps 11, --min_sample_ms 20, --methods (default all), --seed, --out.

Kernel W = random normal * pruning.magnitude_mask(W, s, block_shape). Methods (each a
tf.function, no XLA; the format conversion happens once, offline, and is not timed):
  dense     tf.matmul(x, W) with the zeros                              (the baseline)
  sp_xW     tf.sparse.sparse_dense_matmul(x, SparseTensor(W))           (dense @ sparse)
  sp_WtxT   transpose(sparse_dense_matmul(SparseTensor(W^T), x, adjoint_b=True))
  csr_xW    CSR sparse matrix (tf internal linalg.sparse ops), x @ W_csr
  csr_WtxT  transpose(W^T_csr @ x^T)
  bell      block-ELL for block (br, bc), bc > 1: per output column block the list of its
            non-zero (br x bc) blocks, padded to the longest; gather the matching rows of
            x^T, one batched matmul [n_colblocks, bc, K*br] @ [n_colblocks, K*br, rows].
            Pure TF ops (TF has no block-sparse CPU kernel); skipped when the gathered
            tensor would exceed --bell_max_mfloats.
  compact   drop the all-zero input rows and output columns of W: gather x's kept columns,
            smaller dense matmul, scatter back into the output width (a gather). Only helps
            when whole rows/columns are zero: with (1,4) or (4,4) magnitude blocks on a
            kernel with d_in >= 256, a whole column is (almost) never pruned, so compact is
            the dense matmul plus overhead; with colx1 it is neuron pruning.
  compact_ns  compact without the scatter back: returns only the kept output columns
            (checked against those). What an FFN pair would run after neuron pruning,
            when the next kernel's matching input rows are dropped too.

Timing: per case all methods are checked against dense (assert_allclose), warmed up, then
--reps rounds; in each round every method (rotating order) runs enough calls for about
--min_sample_ms. Reported: speed-up = dense time / method time, the median over rounds of
the ratio measured in the same round (the machine is noisy: compare ratios, not ms).
"""

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import numpy as np
import tensorflow as tf
from tensorflow.python.ops.linalg.sparse import sparse_csr_matrix_ops as csr_ops

from onemodel import pruning

ALL_METHODS = ["dense", "sp_xW", "sp_WtxT", "csr_xW", "csr_WtxT", "bell", "compact",
               "compact_ns"]


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--shapes", default="256x1024,1024x256,1024x1024")
  p.add_argument("--rows", default="2048,32")
  p.add_argument("--sparsities", default="0.5,0.75,0.9")
  p.add_argument("--blocks", default="1x1,1x4,4x4,colx1")
  p.add_argument("--methods", default=",".join(ALL_METHODS))
  p.add_argument("--reps", type=int, default=11)
  p.add_argument("--min_sample_ms", type=float, default=20.0)
  p.add_argument("--bell_max_mfloats", type=float, default=64.0,
                 help="skip bell when its gathered tensor exceeds this many M floats")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="")
  return p.parse_args(argv)


def block_of(spec, d_in):
  a, b = spec.split("x")
  return (d_in if a == "col" else int(a), int(b))


# ---------------------------------------------------------------- methods (x @ W)

def make_dense(w):
  w = tf.constant(w)
  return tf.function(lambda x: tf.matmul(x, w))


def make_sp_xW(w):
  sp = tf.sparse.from_dense(tf.constant(w))
  return tf.function(lambda x: tf.sparse.sparse_dense_matmul(x, sp))


def make_sp_WtxT(w):
  sp = tf.sparse.from_dense(tf.constant(w.T))
  return tf.function(
      lambda x: tf.transpose(tf.sparse.sparse_dense_matmul(sp, x, adjoint_b=True)))


def make_csr_xW(w):
  c = csr_ops.CSRSparseMatrix(tf.sparse.from_dense(tf.constant(w)))
  return tf.function(lambda x: csr_ops.matmul(x, c))


def make_csr_WtxT(w):
  c = csr_ops.CSRSparseMatrix(tf.sparse.from_dense(tf.constant(w.T)))
  return tf.function(lambda x: tf.transpose(csr_ops.matmul(c, x, transpose_b=True)))


def bell_format(w, block):
  """Block-ELL of W [d_in, d_out] with blocks (br, bc) dividing its dims ->
  (idx [nc, K] row-block indices, vals [nc, K*br, bc]); padding blocks are zero."""
  br, bc = block
  d_in, d_out = w.shape
  assert d_in % br == 0 and d_out % bc == 0, (w.shape, block)
  nr, nc = d_in // br, d_out // bc
  blocks = w.reshape(nr, br, nc, bc).transpose(2, 0, 1, 3)      # [nc, nr, br, bc]
  nonzero = np.abs(blocks).sum(axis=(2, 3)) > 0                  # [nc, nr]
  k = max(1, int(nonzero.sum(axis=1).max()))
  idx = np.zeros([nc, k], np.int32)
  vals = np.zeros([nc, k, br, bc], w.dtype)
  for j in range(nc):
    rows = np.nonzero(nonzero[j])[0]
    idx[j, :len(rows)] = rows
    vals[j, :len(rows)] = blocks[j, rows]
  return idx, vals.reshape(nc, k * br, bc)


def make_bell(w, block):
  br, bc = block
  d_in, d_out = w.shape
  idx, vals = bell_format(w, block)
  idx, vals = tf.constant(idx), tf.constant(vals)
  nr, nc = d_in // br, d_out // bc

  @tf.function
  def f(x):
    xt = tf.reshape(tf.transpose(x), [nr, br, -1])               # [nr, br, rows]
    g = tf.reshape(tf.gather(xt, idx), [nc, -1, tf.shape(x)[0]])  # [nc, K*br, rows]
    y = tf.matmul(vals, g, transpose_a=True)                      # [nc, bc, rows]
    return tf.transpose(tf.reshape(y, [d_out, -1]))
  return f


def compact_format(w):
  """-> (kept input rows, kept output cols, W[kept_in][:, kept_out], inverse column map
  into [y_compact, 0] for dropped columns)."""
  kin = np.nonzero(np.abs(w).sum(axis=1) > 0)[0].astype(np.int32)
  kout = np.nonzero(np.abs(w).sum(axis=0) > 0)[0].astype(np.int32)
  inv = np.full([w.shape[1]], len(kout), np.int32)
  inv[kout] = np.arange(len(kout), dtype=np.int32)
  return kin, kout, w[kin][:, kout], inv


def make_compact(w, scatter=True):
  kin, kout, wc, inv = compact_format(w)
  d_in, d_out = w.shape
  gather_in, scatter_out = len(kin) < d_in, scatter and len(kout) < d_out
  kin_t, inv_t, wc_t = tf.constant(kin), tf.constant(inv), tf.constant(wc)

  @tf.function
  def f(x):
    xc = tf.gather(x, kin_t, axis=1) if gather_in else x
    y = tf.matmul(xc, wc_t)
    if scatter_out:
      y = tf.gather(tf.pad(y, [[0, 0], [0, 1]]), inv_t, axis=1)
    return y
  f.kept, f.kout = (len(kin), len(kout)), kout
  return f


def build(method, w, block):
  if method == "bell":
    return make_bell(w, block)
  return {"dense": make_dense, "sp_xW": make_sp_xW, "sp_WtxT": make_sp_WtxT,
          "csr_xW": make_csr_xW, "csr_WtxT": make_csr_WtxT,
          "compact": make_compact,
          "compact_ns": lambda w: make_compact(w, scatter=False)}[method](w)


def bell_size(w, block, rows):
  """M floats of bell's gathered tensor, or None if bell does not apply."""
  br, bc = block
  if bc == 1 or w.shape[0] % br or w.shape[1] % bc:
    return None
  nr, nc = w.shape[0] // br, w.shape[1] // bc
  nz = np.abs(w.reshape(nr, br, nc, bc)).sum(axis=(1, 3)) > 0     # [nr, nc]
  k = max(1, int(nz.sum(axis=0).max()))
  return nc * k * br * rows / 1e6


# ---------------------------------------------------------------- timing

def time_calls(f, x, n):
  t = time.perf_counter()
  for _ in range(n):
    f(x)            # eager CPU execution is synchronous: the result exists on return
  return (time.perf_counter() - t) / n


def measure_case(fns, x, reps, min_sample_s):
  """-> {method: (median speed-up vs dense, median seconds per call)}."""
  names = list(fns)
  per_call = {}
  for m in names:                                       # warm-up + calls per sample
    fns[m](x)
    t = time_calls(fns[m], x, 3)
    per_call[m] = max(1, int(round(min_sample_s / max(t, 1e-6))))
  times = {m: [] for m in names}
  for r in range(reps):
    order = names[r % len(names):] + names[:r % len(names)]
    for m in order:
      times[m].append(time_calls(fns[m], x, per_call[m]))
  out = {}
  for m in names:
    ratios = [d / t for d, t in zip(times["dense"], times[m])]
    out[m] = (statistics.median(ratios), statistics.median(times[m]))
  return out


def cpu_model():
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def main(argv=None):
  args = parse_args(argv)
  shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
  row_list = [int(r) for r in args.rows.split(",")]
  sparsities = [float(s) for s in args.sparsities.split(",")]
  blocks = args.blocks.split(",")
  methods = args.methods.split(",")
  if "dense" not in methods:
    methods = ["dense"] + methods
  rng = np.random.default_rng(args.seed)
  started = datetime.datetime.now(datetime.timezone.utc)
  results = []
  for d_in, d_out in shapes:
    w0 = rng.standard_normal([d_in, d_out]).astype(np.float32)
    for rows in row_list:
      x = tf.constant(rng.standard_normal([rows, d_in]).astype(np.float32))
      cases = [("-", (1, 1), 0.0)] + [(b, block_of(b, d_in), s)
                                       for b in blocks for s in sparsities]
      for bname, block, s in cases:
        mask = pruning.magnitude_mask(w0, s, block).numpy()
        w = w0 * mask
        y_ref = (x.numpy().astype(np.float64) @ w.astype(np.float64))
        fns, notes = {}, {}
        for m in methods:
          if m == "bell":
            size = bell_size(w, block, rows)
            if size is None:
              continue
            if size > args.bell_max_mfloats:
              notes[m] = f"skip ({size:.0f}M floats)"
              continue
          fns[m] = build(m, w, block)
          y = fns[m](x).numpy()
          ref = y_ref[:, fns[m].kout] if m == "compact_ns" else y_ref
          np.testing.assert_allclose(y, ref, rtol=1e-4,
                                     atol=1e-4 * float(np.abs(y_ref).max()),
                                     err_msg=f"{m} {d_in}x{d_out} {block} {s}")
        res = measure_case(fns, x, args.reps, args.min_sample_ms / 1e3)
        kept = getattr(fns.get("compact"), "kept", None)
        rec = {"shape": f"{d_in}x{d_out}", "rows": rows, "block": bname,
               "block_shape": block, "sparsity": s,
               "achieved": 1.0 - float(mask.mean()), "res": res, "notes": notes,
               "kept": kept}
        results.append(rec)
        line = " ".join(f"{m}={r[0]:.2f}" for m, r in res.items())
        print(f"{rec['shape']} rows={rows} block={bname} s={s:.2f} "
              f"dense={res['dense'][1] * 1e3:.3f}ms {line} {notes or ''}", flush=True)
  if args.out:
    write_md(args, methods, results, started)
  return results


def write_md(args, methods, results, started):
  cmd = "PYTHONPATH=. python benchmarks/sparse_inference.py " + " ".join(sys.argv[1:])
  lines = [
      "# Block sparsity: measured CPU inference speed-up of the pruned matmul",
      "",
      f"Command (worktree root): `{cmd.strip()}`",
      "",
      f"Machine: {platform.node()}, `nproc` = {os.cpu_count()}, {cpu_model()}, "
      f"TF {tf.__version__}, numpy {np.__version__}, no GPU. "
      f"Date: {started:%Y-%m-%d %H:%M} UTC.",
      "",
      "y = x @ W, W [d_in, d_out] float32 pruned with `pruning.magnitude_mask` (random "
      "normal weights, L2 block norm). Cells: speed-up vs the dense matmul with zeros "
      "(dense time / method time, median of the per-round ratios over "
      f"{args.reps} rounds, methods alternating within each round); > 1 is faster. "
      "`dense ms` is the absolute median time of the baseline, for orientation only "
      "(noisy machine). Block `colx1` = block (d_in, 1): whole output columns (neuron "
      "pruning). `-` = not applicable (bell needs a block with bc > 1); "
      "`kept` = input rows x output columns left after dropping all-zero ones (compact); "
      "compact_ns = compact without scattering the output back to full width.",
      "",
      "| W | rows | block | sparsity | dense ms | " + " | ".join(methods[1:]) +
      " | kept |",
      "|---" * (5 + len(methods)) + "|",
  ]
  for r in results:
    cells = []
    for m in methods[1:]:
      if m in r["res"]:
        cells.append(f"{r['res'][m][0]:.2f}")
      else:
        cells.append(r["notes"].get(m, "-"))
    kept = f"{r['kept'][0]}x{r['kept'][1]}" if r["kept"] else "-"
    lines.append(f"| {r['shape']} | {r['rows']} | {r['block']} | "
                 f"{r['sparsity']:.2f} ({r['achieved']:.3f}) | "
                 f"{r['res']['dense'][1] * 1e3:.3f} | " + " | ".join(cells) +
                 f" | {kept} |")
  lines += ["", "Sparsity column: target (achieved fraction of zeros).", ""]
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    f.write("\n".join(lines))
  print("wrote", args.out)


if __name__ == "__main__":
  main()

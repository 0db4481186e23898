"""Workloads the planner knows: a few numbers each, with their sources.

A workload is what one training run costs per example (FLOPs, parameters to all-reduce),
how many examples an epoch has, and how many steps reach its target (`steps.StepModel`).
`measured` holds what a run on this machine measured (see rundir.py).
"""

import dataclasses
from typing import Optional

from onemodel.errors import UserError
from onemodel.plan import steps as steps_lib

BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2}


def transformer_flops_per_token(model_dim, ffn_dim, enc_layers, dec_layers, vocab,
                                src_len, tgt_len, mlm_fraction=1.0):
  """Training FLOPs per target token: 6 x matmul weights per token (forward + two
  backward matmuls; Kaplan et al. 2020, arXiv:2001.08361 Table 1) + 6 x 2 x 2 x D x L
  per attention layer and token + the softmax projection (6 x D x V on the predicted
  fraction of tokens). Source tokens are counted per target token (src_len / tgt_len).
  Same formula as onemodel.throughput.step_flops."""
  d, f = model_dim, ffn_dim
  enc = 6 * (4 * d * d + 2 * d * f) * enc_layers * src_len / tgt_len
  dec = 6 * ((8 if enc_layers else 4) * d * d + 2 * d * f) * dec_layers
  attn = 24 * d * (enc_layers * src_len * src_len / tgt_len +
                   dec_layers * (tgt_len + (src_len if enc_layers else 0)))
  return enc + dec + attn + 6 * d * vocab * mlm_fraction


@dataclasses.dataclass(frozen=True)
class Measured:
  """What a run measured on this machine (the Paleo way: the planner scales it)."""
  examples_per_sec: float       # whole-machine training throughput (one "chip")
  batch: float                  # global batch of the run, in `unit`
  step_cv: Optional[float]      # per-step coefficient of variation of the step time
  mfu: Optional[float]          # its MFU against this machine's matmul peak
  peak_flops: Optional[float]   # this machine's fp32 matmul peak
  staleness: Optional[float] = None
  source: str = ""


@dataclasses.dataclass(frozen=True)
class Workload:
  name: str
  unit: str                     # what one example is: image, token, sequence
  flops_per_example: float      # training FLOPs (forward + backward)
  params: float
  precision: str                # of the math (and of the gradients, unless grad_precision)
  family: str                   # cnn | transformer (which calibrated MFU applies)
  step_model: steps_lib.StepModel
  model_dim: int = 0            # for tensor-parallel estimates
  layers: int = 0
  tokens_per_example: float = 1.0
  target: str = ""
  source: str = ""
  measured: Optional[Measured] = None
  grad_precision: str = ""      # of the all-reduced gradients (default: precision)
  # Bytes of device memory the optimizer update reads and writes per parameter: fp32
  # weight, gradient, moments (Adam/LAMB: w, g, m, v read + w, m, v written = 28;
  # momentum/LARS: w, g, m read + w, m written = 20).
  update_bytes_per_param: float = 28.0

  @property
  def grad_bytes(self) -> float:
    return self.params * BYTES.get(self.grad_precision or self.precision, 4)


# ResNet-50: 3.8e9 multiply-adds forward at 224x224 (He et al. 2015, arXiv:1512.03385
# Table 1), x2 FLOPs per multiply-add, x3 for forward + backward.
RESNET50 = Workload(
    name="resnet50_imagenet", unit="image", flops_per_example=3 * 2 * 3.8e9,
    params=25.6e6, precision="fp16", family="cnn", update_bytes_per_param=20.0,
    step_model=steps_lib.StepModel(1_281_167, epochs=90.0,
                                   note="90 epochs, Goyal et al. 2017 recipe"),
    target="75.9-76.3% top-1",
    source="He et al. 2015 (arXiv:1512.03385) Table 1: 3.8 GMAC forward; 25.6M "
           "parameters (keras.io/api/applications); ImageNet-1k train 1,281,167 images")

# Transformer-big (Vaswani et al. 2017, arXiv:1706.03762 Table 3: d 1024, FFN 4096, 6+6
# layers, 213M parameters). Examples are target-token slots of a token-budget batch, as
# MLPerf v0.6 counts global_batch_size; one epoch of WMT En-De is 1637 updates of 81920
# slots in NVIDIA's v0.6 log (dgx1_ngc19.05_pytorch, 'epoch 001 | ... num_updates 1631',
# wpb 74,800, bsz 2,600 pairs: 28.8 target tokens a pair).
TRANSFORMER_BIG = Workload(
    name="transformer_big_wmt14", unit="token",
    flops_per_example=transformer_flops_per_token(1024, 4096, 6, 6, 33708, 28.8, 28.8),
    params=213e6, precision="fp16", family="transformer",
    step_model=steps_lib.StepModel(1637 * 81920, epochs=3.0,
                                   note="MLPerf v0.6: BLEU 25 in ~3 epochs at 82k tokens"),
    model_dim=1024, layers=12, tokens_per_example=28.8, target="BLEU 25 (MLPerf) / 28.4",
    source="Vaswani et al. 2017 (arXiv:1706.03762) Table 3; MLPerf v0.6 NVIDIA log")

# BERT-large (Devlin et al. 2018, arXiv:1810.04805: 24 layers, d 1024, 340M parameters),
# pre-trained as in You et al. 2019 (arXiv:1904.00962): 7038 steps of 65536 x 128 tokens
# then 1561 steps of 32768 x 512 (8599 in all); examples are tokens. The MLM softmax
# (vocab 30522) is computed on the 15% masked tokens.
_BERT_TOKENS = 7038 * 65536 * 128 + 1561 * 32768 * 512
BERT_LARGE = Workload(
    name="bert_large", unit="token",
    flops_per_example=(7038 * 65536 * 128 * transformer_flops_per_token(
        1024, 4096, 0, 24, 30522, 128, 128, 0.15) + 1561 * 32768 * 512 *
        transformer_flops_per_token(1024, 4096, 0, 24, 30522, 512, 512, 0.15)) / _BERT_TOKENS,
    params=340e6, precision="bf16", family="transformer",
    step_model=steps_lib.StepModel(3.3e9, epochs=_BERT_TOKENS / 3.3e9,
                                   note="LAMB's 8599 steps (You et al. 2019) in tokens"),
    model_dim=1024, layers=24, tokens_per_example=512, target="SQuAD v1.1 F1 90.5",
    source="Devlin et al. 2018 (arXiv:1810.04805); You et al. 2019 (arXiv:1904.00962) "
           "Table 1; BooksCorpus + Wikipedia = 3.3B words")

REFERENCE = {w.name: w for w in (RESNET50, TRANSFORMER_BIG, BERT_LARGE)}


def reference(name: str) -> Workload:
  if name not in REFERENCE:
    import difflib
    close = difflib.get_close_matches(name, REFERENCE, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise UserError(f"unknown workload {name!r}{hint}: not a run directory and not one "
                    f"of {', '.join(sorted(REFERENCE))}")
  return REFERENCE[name]

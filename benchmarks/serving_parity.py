"""SavedModel vs onemodel-eval on fsdd: the exported model, fed the raw test WAV files,
must reach the same WER as evaluation through the training pipeline.

  python benchmarks/serving_parity.py --run=runs/quality/fsdd --manual_dir=../shared/data

Exports the run (onemodel-export), runs onemodel-predict on the 300 official test clips
(idx 0-4), scores WER with jiwer against the words in the file names, and runs
onemodel-eval on the same checkpoint."""

import argparse
import json
import os
import subprocess
import sys
import time

import jiwer

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def tool(name):
  return os.path.join(os.path.dirname(sys.executable), name)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--run", required=True)
  ap.add_argument("--manual_dir", default="../shared/data")
  ap.add_argument("--data_dir", default=os.path.expanduser("~/onemodel_data/prepared"))
  args = ap.parse_args()
  dirs = [f"--data_dir={args.data_dir}", f"--manual_dir={args.manual_dir}"]
  export_dir = os.path.join(args.run, "export", "parity")
  subprocess.run([tool("onemodel-export"), f"--output_dir={args.run}",
                  f"--export_dir={export_dir}", *dirs], check=True)
  rec = os.path.join(args.manual_dir, "fsdd", "recordings")
  test = sorted(f for f in os.listdir(rec) if int(f[:-4].split("_")[2]) < 5)
  t0 = time.time()
  out = subprocess.run([tool("onemodel-predict"), f"--saved_model={export_dir}",
                        *[os.path.join(rec, f) for f in test]],
                       check=True, capture_output=True, text=True).stdout
  predict_s = time.time() - t0
  hyps = {os.path.basename(l.split("\t")[0]): l.split("\t")[1]
          for l in out.strip().splitlines()}
  refs = [WORDS[int(f.split("_")[0])] for f in test]
  wer_saved = 100 * jiwer.wer(refs, [hyps[f] for f in test])
  ev = subprocess.run([tool("onemodel-eval"), f"--output_dir={args.run}", *dirs],
                      check=True, capture_output=True, text=True).stdout
  report = json.loads(ev.strip().splitlines()[-1])
  wer_eval = report["metrics"]["wer"]
  print(f"fsdd test ({len(test)} clips), checkpoint {report['checkpoint']}:")
  print(f"  SavedModel + onemodel-predict on raw WAV files: WER {wer_saved:.3f}% "
        f"({predict_s:.1f} s)")
  print(f"  onemodel-eval (TFDS pipeline):                  WER {wer_eval:.3f}%")
  print(f"  same: {abs(wer_saved - wer_eval) < 1e-6}")


if __name__ == "__main__":
  main()

"""Benchmark: what the importance matrix buys and what calibration and the report cost.

On the synthetic Qwen3-0.6B-shaped checkpoint (hidden 1024, 28 layers, vocab 151936, bf16)
with an r=64 LoRA on every linear layer, each run in a fresh process:
  1. `amicus convert` to Q4_K_M with `--imatrix off --no-quality`: the conversion without
     calibration and report (merge + F16 GGUF + quantize + verify),
  2. the default conversion: importance matrix collected on the calibration text, then the
     quality report on held-out text (F16 reference, Q4_K_M, and the base without the
     adapter),
  3. `--imatrix off` with the report: the same held-out figures without the matrix.
Prints mean KL and top-1 agreement with and without the matrix (and their ratio: lower
with it is the target), the seconds calibration and the report add against the
conversion's own (target: at most half), and peak RSS. Random weights make the absolute
figures meaningless (near-flat distributions); the ratio and the method are what count.

Run: .venv/bin/python tests/bench/quality.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from convert import amicus_convert, build, measure  # tests/bench/convert.py, beside it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="amicus-bench-quality-", dir=args.workdir))
    try:
        base, adapter = build(root, 28)
        runs = {}
        for label, extra in (("plain", ("--imatrix", "off", "--no-quality")),
                             ("default", ()), ("no-imatrix", ("--imatrix", "off"))):
            seconds, peak = measure(amicus_convert(base, adapter, root / label, *extra))
            manifest = json.loads((root / label / "manifest.json").read_text())
            runs[label] = (seconds, peak, manifest)
            shutil.rmtree(root / label)
            print(f"{label}: {seconds:.1f} s, peak RSS {peak:.0f} MB, steps "
                  f"{manifest['timings']}", flush=True)
        report(runs)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def report(runs: dict[str, tuple[float, float, dict]]) -> None:
    plain_s, plain_rss, _ = runs["plain"]
    default_s, default_rss, default = runs["default"]
    with_q = default["quality"]["quantized"]
    without_q = runs["no-imatrix"][2]["quality"]["quantized"]
    timings = default["timings"]
    collection = timings.get("calibrate", 0.0)
    report_s = sum(timings.get(step, 0.0)
                   for step in ("quality_reference", "quality_base", "quality"))
    added = collection + report_s
    quantize_extra = (timings.get("quantize", 0.0)
                      - runs["no-imatrix"][2]["timings"].get("quantize", 0.0))
    base = default["quality"]["base"]
    print(f"\nheld-out text: {default['quality']['held_out']}")
    print(f"importance matrix: {default['calibration']['chunks']} chunks x "
          f"{default['calibration']['chunk_size']} tokens ({default['calibration']['set']})")
    print(f"\n{'Q4_K_M vs merged F16':<28} {'mean KL':>9} {'p99 KL':>9} {'top-1':>7}")
    for label, figures in (("without importance matrix", without_q),
                           ("with importance matrix", with_q)):
        print(f"{label:<28} {figures['kl_mean']:>9.4f} {figures['kl_p99']:>9.4f} "
              f"{figures['top1_agreement']:>7.1%}")
    print(f"{'base (fine-tune effect)':<28} {base['kl_mean']:>9.4f} {base['kl_p99']:>9.4f} "
          f"{base['top1_agreement']:>7.1%}")
    print(f"\nKL ratio with/without: {with_q['kl_mean'] / without_q['kl_mean']:.3f} "
          "(target < 1)")
    print(f"conversion without calibration and report: {plain_s:.1f} s, peak RSS "
          f"{plain_rss:.0f} MB")
    print(f"default conversion: {default_s:.1f} s, peak RSS {default_rss:.0f} MB; importance "
          f"matrix collection {collection:.1f} s + report {report_s:.1f} s (F16 reference "
          f"{timings.get('quality_reference', 0):.1f} s, base with the adapter taken out "
          f"{timings.get('quality_base', 0):.1f} s, base F16 written "
          f"{timings.get('quality_base_write', 0):.1f} s, quantized and the rest "
          f"{timings.get('quality', 0):.1f} s)")
    print(f"quantize: {timings.get('quantize', 0):.1f} s with the matrix, "
          f"{runs['no-imatrix'][2]['timings'].get('quantize', 0):.1f} s without")
    print(f"added / conversion without: {added / plain_s:.2f} collection + report, "
          f"{(added + quantize_extra) / plain_s:.2f} with the weighted quantization's extra "
          f"{quantize_extra:.1f} s, {(default_s - plain_s) / plain_s:.2f} wall to wall "
          "(target <= 0.5)")


if __name__ == "__main__":
    main()

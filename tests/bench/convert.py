"""Benchmark: Amicus' streaming convert vs the usual peft merge + save_pretrained path.

Builds a synthetic checkpoint with Qwen3-0.6B's real shape (hidden 1024, 28 layers,
intermediate 3072, vocab 151936, tied embeddings, bf16) and an r=64 LoRA on every linear
layer, then measures wall time and peak RSS of, each in a fresh process:
  1. `amicus convert --quant F16 --no-verify` (merge + GGUF write),
  2. the same with verification (llama.cpp maps and runs the written model),
  3. peft: from_pretrained + PeftModel + merge_and_unload + save_pretrained,
  4. `amicus convert` on the same model twice as deep (56 layers): memory must not grow.

Run: .venv/bin/python tests/bench/convert.py [--workdir DIR]   (needs the reference extra)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from converters.synthetic import checkpoints as synthetic

QWEN3_06B = synthetic.Shape(hidden=1024, intermediate=3072, layers=28, heads=16, kv_heads=8,
                            head_dim=128, vocab=151936)
LORA = synthetic.AdapterSpec(r=64, lora_alpha=128)

# Runs a command and reports the peak RSS of it (and its children) from a fresh parent.
_MEASURE = textwrap.dedent("""
    import resource, subprocess, sys, time
    start = time.perf_counter()
    done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.stderr.write(done.stderr.decode()[-2000:])
        sys.exit(done.returncode)
    print(seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
""")

_PEFT_PATH = textwrap.dedent("""
    import sys
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    base, adapter, out = sys.argv[1:4]
    model = AutoModelForCausalLM.from_pretrained(base)
    model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    model.save_pretrained(out)
""")


def measure(command: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of a command run in a fresh process tree."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr}")
    seconds, kilobytes = done.stdout.split()
    return float(seconds), int(kilobytes) / 1024


def build(root: Path, layers: int) -> tuple[Path, Path]:
    shape = synthetic.Shape(**{**QWEN3_06B.__dict__, "layers": layers})
    started = time.perf_counter()
    base = synthetic.build_qwen3(root / f"base-{layers}", shape=shape, tied=True,
                                 max_shard_bytes=2 * 1024**3).path
    adapter = synthetic.build_adapter(root / f"lora-{layers}", base, LORA)
    size = sum(p.stat().st_size for p in base.glob("*.safetensors"))
    print(f"built {layers}-layer checkpoint ({size / 1e9:.2f} GB bf16) + r=64 adapter "
          f"in {time.perf_counter() - started:.1f} s")
    return base, adapter


def amicus_convert(base: Path, adapter: Path, out: Path, *extra: str) -> list[str]:
    """The `amicus convert` command line of a benchmark run."""
    return [str(Path(sys.executable).with_name("amicus")), "convert", "--base", str(base),
            "--adapter", str(adapter), "--name", "bench", "--out", str(out), *extra]


def amicus(base: Path, adapter: Path, out: Path, *extra: str) -> list[str]:
    return amicus_convert(base, adapter, out, "--quant", "F16", *extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="amicus-bench-", dir=args.workdir))
    try:
        rows = []
        base, adapter = build(root, 28)
        rows.append(("amicus convert F16 (no verify)",
                     *measure(amicus(base, adapter, root / "o1", "--no-verify"))))
        rows.append(("amicus convert F16 (verified)",
                     *measure(amicus(base, adapter, root / "o2"))))
        rows.append(("peft merge_and_unload + save_pretrained",
                     *measure([sys.executable, "-c", _PEFT_PATH, str(base), str(adapter),
                               str(root / "o3")])))
        shutil.rmtree(root / "o1"), shutil.rmtree(root / "o2"), shutil.rmtree(root / "o3")
        deep_base, deep_adapter = build(root, 56)
        rows.append(("amicus convert F16, 56 layers (no verify)",
                     *measure(amicus(deep_base, deep_adapter, root / "o4", "--no-verify"))))
        print(f"\n{'path':<44} {'wall s':>8} {'peak RSS MB':>12}")
        for label, seconds, peak in rows:
            print(f"{label:<44} {seconds:>8.1f} {peak:>12.0f}")
        print(f"\npeak RSS ratio amicus/peft: {rows[0][2] / rows[2][2]:.2f} (target <= 0.25); "
              f"wall ratio: {rows[0][1] / rows[2][1]:.2f} (target <= 1.0); "
              f"56 vs 28 layers peak: {rows[3][2] / rows[0][2]:.2f} (target ~1.0)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

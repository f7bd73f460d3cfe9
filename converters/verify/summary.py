"""The importance matrix and quality report of a manifest, as lines for people: what
`amicus convert` prints at the end, `amicus models list --details` and the app's model
manager show. Light on purpose (no numpy, no llama.cpp): the app imports it at start.
"""

from __future__ import annotations

from typing import Any


def report_rows(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) lines of a manifest's importance matrix and quality report, as
    `amicus convert`, `amicus models list --details` and the app's model manager show
    them. Empty for manifests written before either existed."""
    rows: list[tuple[str, str]] = []
    calibration = manifest.get("calibration")
    if isinstance(calibration, dict):
        rows.append(("importance matrix", matrix_text(calibration)))
    report = manifest.get("quality")
    if not isinstance(report, dict):
        return rows
    quantized, base = report["quantized"], report.get("base")
    if "kl_mean" in quantized:
        rows += [("KL vs F16, mean / p99",
                  f"{quantized['kl_mean']:.4f} / {quantized['kl_p99']:.4f}"),
                 ("top-1 agreement", f"{quantized['top1_agreement']:.1%}")]
        if base is not None:
            rows.append(("fine-tune KL, base vs F16", f"{base['kl_mean']:.4f}"))
    else:
        rows += [("largest probability change",
                  f"{quantized['max_probability_difference']:.4f}"),
                 ("verdict agreement", f"{quantized['verdict_agreement']:.1%}")]
        if base is not None:
            rows.append(("fine-tune, largest change",
                         f"{base['max_probability_difference']:.4f}"))
    if report.get("noise_to_finetune") is not None:
        rows.append(("noise / fine-tune", f"{report['noise_to_finetune']:.3f}"))
    elif report.get("base_note"):
        rows.append(("fine-tune effect", report["base_note"]))
    held = report["held_out"]
    unit = "texts" if "texts" in held else "tokens"
    rows.append(("held-out text", f"{held['set']}, {held[unit]} {unit}"))
    if report.get("warning"):  # the manifest's has the figures, already shown above
        rows.append(("warning", "quantization noise is not clearly below the fine-tune's "
                                "effect; consider Q5_K_M or Q8_0"))
    return rows


def matrix_text(calibration: dict[str, Any]) -> str:
    """A manifest's `calibration` in one line: how the importance matrix was made, or why
    there is none."""
    if calibration.get("imatrix") == "off":
        return f"off ({calibration.get('reason', '')})"
    source = calibration.get("file") or calibration.get("set") or \
        ", ".join(calibration.get("datasets", []))
    return (f"{calibration['imatrix']} ({source}), {calibration.get('chunks', 0)} x "
            f"{calibration.get('chunk_size', 0)} tokens")


def report_table(manifest: dict[str, Any], indent: str = "") -> list[str]:
    """report_rows as a two-column table, one string per line."""
    rows = report_rows(manifest)
    width = max((len(label) for label, _ in rows), default=0)
    return [f"{indent}{label:<{width}}  {value}" for label, value in rows]

"""The quality report: its KL and agreement figures equal a direct computation, the fields
are consistent, the base is compared only when adapters were merged, an importance matrix
lowers the drift on held-out text, and the classifier is compared on its verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from converters.llama_eval import Session
from converters.pipeline import ConvertRequest, Progress, convert
from converters.quantize.calibration import load_set
from converters.verify.quality import (
    NOISE_RATIO_LIMIT,
    HeldOut,
    build_report,
    drift,
    log_softmax,
    reference,
)

QUIET = Progress(enabled=False)


def _convert(base, out, adapters=(), **options):
    return convert(ConvertRequest(base=str(base), adapters=tuple(str(a) for a in adapters),
                                  name="m", out_dir=out, **options), QUIET)


@pytest.fixture(scope="module")
def qwen3_lora(tmp_path_factory, sources):
    """Q4_K_M with the report, and the F16 it came from (kept for the checks below)."""
    return _convert(sources.qwen3, tmp_path_factory.mktemp("q"), [sources.qwen3_lora],
                    keep_intermediate=True)


def test_chat_report_fields_are_consistent(qwen3_lora):
    report = qwen3_lora.manifest["quality"]
    quantized, base = report["quantized"], report["base"]
    held = report["held_out"]
    assert held["set"] == "general" and held["chunks"] == 2 and 512 < held["tokens"] <= 1024
    for figures in (quantized, base):
        assert figures["positions"] == held["tokens"]
        assert 0 <= figures["kl_mean"] <= figures["kl_p99"] * 10
        assert figures["kl_p99"] >= 0 and 0 <= figures["top1_agreement"] <= 1
    assert report["noise_to_finetune"] == round(quantized["kl_mean"] / base["kl_mean"], 4)
    assert (report["warning"] is not None) == (report["noise_to_finetune"] >= NOISE_RATIO_LIMIT)
    # The base is compared by taking the adapter back out of the F16 (no base written).
    assert set(qwen3_lora.manifest["timings"]) >= {"merge_write", "calibrate", "quantize",
                                                   "verify", "quality_reference", "quality",
                                                   "quality_base", "total"}
    assert "quality_base_write" not in qwen3_lora.manifest["timings"]


def _log_probabilities(session, chunk):
    return log_softmax(np.concatenate([batch.copy() for batch in session.evaluate(chunk)]))


def test_drift_equals_a_direct_computation(tmp_path, qwen3_lora):
    q4, f16 = qwen3_lora.outputs[0], qwen3_lora.outputs[1]
    rng = np.random.default_rng(7)
    held = HeldOut("t", False, [[int(t) for t in rng.integers(0, 500, n)] for n in (100, 37)])
    with Session(f16, n_ctx=128, threads=1) as session:
        ref = reference(session, held, tmp_path / "ref.f32")
        itself = drift(session, held, ref)
        p = [_log_probabilities(session, c) for c in held.inputs]
    assert itself["kl_mean"] < 1e-6 and itself["top1_agreement"] == 1  # float32 storage
    with Session(q4, n_ctx=128, threads=1) as session:
        figures = drift(session, held, ref)
        q = [_log_probabilities(session, c) for c in held.inputs]
    kl = np.concatenate([(np.exp(a) * (a - b)).sum(axis=1) for a, b in zip(p, q, strict=True)])
    top1 = np.concatenate([a.argmax(1) == b.argmax(1) for a, b in zip(p, q, strict=True)])
    assert figures["positions"] == 137
    assert math.isclose(figures["kl_mean"], kl.mean(), rel_tol=1e-4)
    assert math.isclose(figures["kl_p99"], np.percentile(kl, 99), rel_tol=1e-4)
    assert figures["top1_agreement"] == top1.mean()


def test_no_base_comparison_without_adapters(tmp_path, sources):
    report = _convert(sources.llama, tmp_path).manifest["quality"]
    assert report["base"] is None and report["noise_to_finetune"] is None
    assert report["warning"] is None and report["quantized"]["kl_mean"] >= 0


def test_importance_matrix_lowers_the_drift_on_held_out_text(tmp_path, sources):
    """The synthetic Qwen3 (random weights): mean KL 0.0185 with, 0.0206 without (-10%)."""
    with_matrix = _convert(sources.qwen3, tmp_path / "with").manifest
    without = _convert(sources.qwen3, tmp_path / "without", imatrix="off").manifest
    assert with_matrix["calibration"]["imatrix"] == "collected"
    assert with_matrix["quality"]["held_out"] == without["quality"]["held_out"]
    kl_with = with_matrix["quality"]["quantized"]["kl_mean"]
    kl_without = without["quality"]["quantized"]["kl_mean"]
    assert kl_with < 0.97 * kl_without, (kl_with, kl_without)
    assert with_matrix["outputs"][0]["sha256"] != without["outputs"][0]["sha256"]


def test_classifier_report(tmp_path, sources):
    manifest = _convert(sources.classifier, tmp_path, [sources.classifier_adapter]).manifest
    report = manifest["quality"]
    held = len(load_set("intent-safety").held_out)
    assert report["held_out"]["set"] == "intent-safety" and report["held_out"]["texts"] == held
    for figures in (report["quantized"], report["base"]):
        assert 0 <= figures["max_probability_difference"] <= 1
        assert 0 <= figures["verdict_agreement"] <= 1 and figures["texts"] == held
    # The adapter trained the score head: it moves the verdict far more than quantization.
    assert report["base"]["max_probability_difference"] > \
        report["quantized"]["max_probability_difference"]
    assert manifest["calibration"]["set"] == "intent-safety"


def test_no_report_when_not_asked_or_not_quantized(tmp_path, sources):
    assert _convert(sources.qwen3, tmp_path / "a", quality=False).manifest["quality"] is None
    assert _convert(sources.qwen3, tmp_path / "b", verify=False).manifest["quality"] is None
    f16 = _convert(sources.qwen3, tmp_path / "c", quant="F16").manifest
    assert f16["quality"] is None
    assert f16["calibration"] == {"imatrix": "off", "reason": "F16 does not use one"}
    q8 = _convert(sources.qwen3, tmp_path / "d", quant="Q8_0").manifest
    assert q8["calibration"] == {"imatrix": "off", "reason": "Q8_0 does not use one"}
    assert q8["quality"]["quantized"]["kl_mean"] < 0.01  # Q8_0 barely moves


@pytest.mark.parametrize("noise, effect, warned", [(0.01, 0.1, False), (0.03, 0.1, True),
                                                     (0.01, 0.0, True)])
def test_warning_when_noise_is_not_clearly_smaller(noise, effect, warned):
    held = HeldOut("s", False, [[1, 2, 3]])
    figures = {"kl_mean": noise, "kl_p99": noise, "top1_agreement": 1.0, "positions": 3}
    base = dict(figures, kl_mean=effect)
    report = build_report(held, figures, base, None)
    assert (report["warning"] is not None) == warned
    assert report["noise_to_finetune"] == (None if effect == 0 else round(noise / effect, 4))

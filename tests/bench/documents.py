"""Benchmark: case documents on a synthetic Qwen3-0.6B-shaped Q4_K_M model (2 threads here).

Prints, for a 3,000-token document with a question:
  1. time to first token, cold (nothing cached);
  2. time to first token after a cancel halfway through reading and a resend (target: only
     the unread part is evaluated);
  3. time to first token in a new process restoring the state saved by the previous one
     (target: at most 10% of cold), with the state's size and the time to save it;
  4. cancel latency while reading: from setting the cancel to the Finished event, against
     the chunk's duration (target: at most one chunk);
  5. peak RSS of a fresh process at num_ctx 4096, 16384 and 32768 after reading the
     document, against the estimate read from the GGUF before loading (target: within
     15%), both the full-context bound and the estimate for the tokens actually read
     (`--full-context`: also with a document that fills 4096 and 16384 to the last token);
  6. the intent-safety gate's time per check at turns 1 to 8 of one conversation, reading
     fresh every time vs keeping the cache (a synthetic Qwen3-0.6B-shaped classifier).
Each measurement runs in a fresh process. The random-weight models write meaningless
text; only time and memory matter. No assertion: figures only.

Run: .venv/bin/python tests/bench/documents.py [--workdir DIR] [--skip-gate | --gate-only]
     [--full-context]
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from app.engine.engine import Engine  # noqa: E402
from app.engine.events import Finished, PromptStarted, ReadingProgress  # noqa: E402

DOC_TOKENS = 3000
SENTENCES = [
    "On the night of 12 May the defendant entered the shop through the back door.",
    "The shop owner reported the loss of the till and of two mobile phones.",
    "Witness statements place the defendant near the station shortly after midnight.",
    "The defendant returned one of the phones two days later and confessed at once.",
    "The value of the stolen goods was assessed at three thousand yuan.",
    "The court considers the confession and the restitution as mitigating factors.",
    "The prosecution asks for a sentence of one year and a fine.",
    "The defence argues that the defendant acted out of financial distress.",
]
QUESTION = "Summarise the facts and propose a sentence with reasons."
OTHER_QUESTION = "Which circumstances aggravate or mitigate the sentence?"
PARAMS = {"temperature": 0, "num_predict": 8}


# ---------------------------------------------------------------------------- models


def ensure_models(workdir: Path) -> tuple[Path, Path]:
    from tests.bench.engine import ensure_model

    chat = ensure_model(REPO / "build" / "bench-engine")
    classifier = workdir / "clf" / "qwen3-0.6b-clf.Q4_K_M.gguf"
    if not classifier.is_file():
        print(f"building the synthetic Qwen3-0.6B-shaped classifier in {workdir}")
        run_phase("build_classifier", workdir=str(workdir))
    return chat, classifier


def build_classifier(workdir: str) -> dict[str, Any]:
    from converters.pipeline import ConvertRequest, Progress, convert
    from converters.synthetic import checkpoints as synthetic

    shape = synthetic.Shape(hidden=1024, intermediate=3072, layers=28, heads=16, kv_heads=8,
                            head_dim=128, vocab=151936)
    source = synthetic.build_qwen3_classifier(Path(workdir) / "clf-src", shape=shape).path
    result = convert(ConvertRequest(base=str(source), name="qwen3-0.6b-clf",
                                    out_dir=Path(workdir) / "clf", quant="Q4_K_M"),
                     Progress(enabled=False))
    shutil.rmtree(source)
    return {"model": str(result.outputs[0])}


def document(engine: Engine, tokens: int = DOC_TOKENS) -> str:
    """Case text of exactly `tokens` tokens for this model's tokenizer (the largest whole
    number of sentences that fits, topped up word by word)."""
    sentences: list[str] = []
    i = 0
    while len(engine.tokenize(" ".join(sentences))) < tokens:
        sentences.append(f"({i + 1}) {SENTENCES[i % len(SENTENCES)]}")
        i += 1
    text = " ".join(sentences)
    while len(engine.tokenize(text)) > tokens:
        text = text[: text.rfind(" ")]
    return text


def messages(engine: Engine, question: str = QUESTION,
             tokens: int = DOC_TOKENS) -> list[dict[str, str]]:
    from app.documents import Document, compose_message

    doc = Document("case.txt", Path("case.txt"), document(engine, tokens), "text", "UTF-8")
    return [{"role": "user", "content": compose_message(question, [doc])}]


def filling(engine: Engine) -> list[dict[str, str]]:
    """A document and question that fill the context but for the answer's room."""
    room = engine.n_ctx - PARAMS["num_predict"]
    tokens = room - 64
    while True:  # the template, the question and the document's frame: measured, not guessed
        msgs = messages(engine, tokens=tokens)
        estimate = engine.estimate(msgs, params=PARAMS)
        if estimate.prompt_tokens <= room:
            return msgs
        tokens -= estimate.prompt_tokens - room


def ask(engine: Engine, msgs: list[dict[str, str]],
        cancel: threading.Event | None = None) -> dict[str, Any]:
    final: Finished | None = None
    progress: list[float] = []
    for event in engine.stream(msgs, params=PARAMS, cancel=cancel):
        if isinstance(event, ReadingProgress):
            progress.append(time.perf_counter())
        elif isinstance(event, Finished):
            final = event
    assert final is not None
    s = final.stats
    return {"ttft_ms": s.first_token_ms, "prompt_ms": s.prompt_ms,
            "prompt_tokens": s.prompt_tokens, "evaluated": s.prompt_evaluated,
            "restored": s.prompt_restored, "read": s.prompt_read,
            "stop_reason": s.stop_reason, "chunks": len(progress)}


# ---------------------------------------------------------------------------- phases


def phase_cold_cancel(model: str) -> dict[str, Any]:
    """Cold read; then a read cancelled halfway and the resend; then cancel latencies."""
    engine = Engine.load(model, n_ctx=4096)
    msgs = messages(engine)
    cold = ask(engine, msgs)
    engine.reset()
    cancel = threading.Event()
    stopped = None
    for event in engine.stream(msgs, params=PARAMS, cancel=cancel):
        if isinstance(event, ReadingProgress) and event.read >= event.total // 2:
            cancel.set()
        if isinstance(event, Finished):
            stopped = event.stats
    assert stopped is not None
    resend = ask(engine, msgs)
    latencies = [cancel_latency(engine, msgs, after) for after in (3.0, 7.5, 12.0)]
    return {"cold": cold, "cancelled_read": stopped.prompt_read, "resend": resend,
            "latencies": latencies}


def cancel_latency(engine: Engine, msgs: list[dict[str, str]], after_s: float) -> dict[str, Any]:
    """Cancel `after_s` seconds into reading (a fresh read): how long until Finished, and
    how long the chunks were."""
    engine.reset()
    cancel = threading.Event()
    stamps: list[float] = []
    finished: list[float] = []
    set_at: list[float] = []

    def consume() -> None:
        for event in engine.stream(msgs, params=PARAMS, cancel=cancel):
            if isinstance(event, PromptStarted | ReadingProgress):
                stamps.append(time.perf_counter())
            elif isinstance(event, Finished):
                finished.append(time.perf_counter())

    worker = threading.Thread(target=consume)
    worker.start()
    time.sleep(after_s)
    set_at.append(time.perf_counter())
    cancel.set()
    worker.join()
    chunks = [b - a for a, b in itertools.pairwise(stamps)]
    return {"latency_s": finished[0] - set_at[0], "chunk_s": max(chunks) if chunks else 0.0,
            "median_chunk_s": sorted(chunks)[len(chunks) // 2] if chunks else 0.0}


def phase_persist_write(model: str, states: str) -> dict[str, Any]:
    from app.engine.kv_state import KVStateStore

    store = KVStateStore(Path(states))
    store.clear()
    engine = Engine.load(model, n_ctx=4096, states=store)
    first = ask(engine, messages(engine))
    started = time.perf_counter()
    engine.close()  # saves the cache
    save_s = time.perf_counter() - started
    [entry] = store.entries()
    return {"first": first, "save_s": save_s, "state_mb": entry.size / 2**20}


def phase_persist_read(model: str, states: str) -> dict[str, Any]:
    from app.engine.kv_state import KVStateStore

    started = time.perf_counter()
    engine = Engine.load(model, n_ctx=4096, states=KVStateStore(Path(states)))
    load_s = time.perf_counter() - started
    return {"load_s": load_s, "restart": ask(engine, messages(engine, OTHER_QUESTION))}


def phase_rss(model: str, n_ctx: int, full: bool = False) -> dict[str, Any]:
    """`full`: a document that fills the context (what the full-context estimate is for)."""
    from app.engine.memory import estimate_memory

    estimate = estimate_memory(model, n_ctx)
    engine = Engine.load(model, n_ctx=n_ctx)
    result = ask(engine, filling(engine) if full else messages(engine))
    filled = estimate_memory(model, n_ctx, filled=result["prompt_tokens"] + 8)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"n_ctx": n_ctx, "peak_mb": peak / 2**20, "estimate_mb": estimate.total / 2**20,
            "filled_mb": filled.total / 2**20, "kv_mb": estimate.kv_cache / 2**20,
            "compute_mb": estimate.compute / 2**20, "prompt_tokens": result["prompt_tokens"],
            "seconds": result["prompt_ms"] / 1000}


def phase_gate(model: str) -> dict[str, Any]:
    from app.assistants.gate import classifier_profile
    from app.engine.classifier import Classifier

    task = classifier_profile().task_description
    rows = {"fresh": [], "kept": []}
    for mode in ("fresh", "kept"):
        clf = Classifier.load(model, task_description=task)
        clf.keep_cache = mode == "kept"
        dialogue: list[dict[str, str]] = []
        for turn in range(1, 9):
            dialogue.append({"role": "user", "content": f"Turn {turn}: "
                             + " ".join(SENTENCES[(turn + k) % len(SENTENCES)]
                                        for k in range(4))})
            started = time.perf_counter()
            verdict = clf.classify(dialogue)
            rows[mode].append({"turn": turn, "ms": (time.perf_counter() - started) * 1000,
                               "read": clf.last_read, "tokens": len(clf.model_tokens(dialogue)),
                               "p_unsafe": verdict.prob_unsafe, "label": verdict.label})
            dialogue.append({"role": "assistant", "content": f"Reply {turn}: "
                             + " ".join(SENTENCES[(turn + k + 2) % len(SENTENCES)]
                                        for k in range(3))})
        clf.close()
    return rows


PHASES = {"cold_cancel": phase_cold_cancel, "persist_write": phase_persist_write,
          "persist_read": phase_persist_read, "rss": phase_rss, "gate": phase_gate,
          "build_classifier": build_classifier}


def run_phase(name: str, **kwargs: Any) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--phase", name, "--args",
                           json.dumps(kwargs)], capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"phase {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- report


def report_reading(cold: dict[str, Any], written: dict[str, Any],
                   restarted: dict[str, Any]) -> None:
    c, r = cold["cold"], cold["resend"]
    print(f"\n1. time to first token, cold: {c['ttft_ms'] / 1000:.2f} s "
          f"({c['prompt_tokens']:,} prompt tokens, all read, {c['chunks']} chunks)")
    print(f"2. after a cancel at {cold['cancelled_read']:,} tokens and a resend: "
          f"{r['ttft_ms'] / 1000:.2f} s, {r['evaluated']:,} tokens evaluated "
          f"(unread part: {c['prompt_tokens'] - cold['cancelled_read']:,})")
    x = restarted["restart"]
    print(f"3. after a restart with the saved state: {x['ttft_ms'] / 1000:.2f} s "
          f"= {x['ttft_ms'] / c['ttft_ms']:.1%} of cold (target <= 10%); "
          f"{x['restored']:,} tokens restored, {x['evaluated']:,} read; state "
          f"{written['state_mb']:.0f} MB, saved in {written['save_s']:.2f} s; "
          f"model load {restarted['load_s']:.2f} s")
    print("4. cancel latency while reading (target: at most one chunk)")
    for lat in cold["latencies"]:
        print(f"   cancel -> finished {lat['latency_s']:.2f} s; longest chunk "
              f"{lat['chunk_s']:.2f} s, median {lat['median_chunk_s']:.2f} s")


def report_rss(rss: list[dict[str, Any]]) -> None:
    print("5. peak RSS after reading the document, against the estimate before loading")
    print("   num_ctx   tokens read   peak MB   estimate MB (full context)   "
          "estimate MB (tokens read)")
    for row in rss:
        print(f"   {row['n_ctx']:>7}   {row['prompt_tokens']:>11,}   {row['peak_mb']:>7.0f}   "
              f"{row['estimate_mb']:>10.0f} ({row['estimate_mb'] / row['peak_mb'] - 1:+.1%})"
              f"          {row['filled_mb']:>8.0f} "
              f"({row['filled_mb'] / row['peak_mb'] - 1:+.1%})")


def report_gate(gate: dict[str, Any]) -> None:
    print("6. intent-safety gate, time per check (synthetic Qwen3-0.6B-shaped classifier)")
    print("   turn   tokens   fresh ms (read)   kept cache ms (read)   p_unsafe fresh / kept")
    for fresh, kept in zip(gate["fresh"], gate["kept"], strict=True):
        same = "same label" if fresh["label"] == kept["label"] else "LABELS DIFFER"
        print(f"   {fresh['turn']:>4}   {fresh['tokens']:>6}   {fresh['ms']:>8.0f} "
              f"({fresh['read']:>4})   {kept['ms']:>8.0f} ({kept['read']:>4})   "
              f"{fresh['p_unsafe']:.4f} / {kept['p_unsafe']:.4f} ({same})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "build" / "bench-documents")
    parser.add_argument("--skip-gate", action="store_true")
    parser.add_argument("--full-context", action="store_true",
                        help="part 5 also with documents that fill the context (slow)")
    parser.add_argument("--gate-only", action="store_true", help="only part 6")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--args", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](**json.loads(args.args))))
        return
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # each part as done
    args.workdir.mkdir(parents=True, exist_ok=True)
    chat, classifier = ensure_models(args.workdir)
    model, states = str(chat), str(args.workdir / "kv-states")
    if args.gate_only:
        report_gate(run_phase("gate", model=str(classifier)))
        return
    print(f"model {model}")
    cold = run_phase("cold_cancel", model=model)
    written = run_phase("persist_write", model=model, states=states)
    restarted = run_phase("persist_read", model=model, states=states)
    report_reading(cold, written, restarted)
    rows = [run_phase("rss", model=model, n_ctx=n) for n in (4096, 16384, 32768)]
    if args.full_context:  # the context filled to its last token (16,384: ~10 min here)
        rows += [run_phase("rss", model=model, n_ctx=n, full=True) for n in (4096, 16384)]
    report_rss(rows)
    if not args.skip_gate:
        report_gate(run_phase("gate", model=str(classifier)))


if __name__ == "__main__":
    main()

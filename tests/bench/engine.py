"""Benchmark: Amicus' engine on a synthetic Qwen3-0.6B-shaped Q4_K_M model.

Prints:
  1. decode tokens/s through `Engine.stream` vs a bare `llama_cpp.Llama.generate` loop on
     the same file, threads and sampler (target ratio >= 0.97);
  2. time to first token on turns 1..5 of one conversation (turn 5 must not grow with the
     history: the KV cache is reused), and the peak RSS of a process holding the engine;
  3. tokens/s under the default (adaptive) thread policy, idle and next to one CPU-bound
     background process (target >= 0.5 of idle), with "all cores" under the same load for
     contrast.
Every measurement runs in a fresh process (clean RSS; the engine and the bare loop never
share a process, caches or memory bandwidth). The random-weight model writes meaningless
text; only its speed matters. The load other processes put on the machine is printed with
the thread-policy figures (on a shared VM "idle" may not be).

Run: .venv/bin/python tests/bench/engine.py [--workdir DIR] [--tokens N] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from app.engine.engine import Engine  # noqa: E402
from app.engine.events import AnswerDelta, Finished, ThinkingDelta  # noqa: E402
from app.engine.threads import ThreadPolicy, physical_cores, shared_monitor  # noqa: E402

SAMPLING = {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "min_p": 0.0,
            "repeat_penalty": 1.1, "repeat_last_n": 64, "seed": 42}
QUESTION = [{"role": "user", "content": "Summarise the facts of the case in three sentences."}]
BUSY_LOOP = "while True: pass"


# ---------------------------------------------------------------------------- model


def build_model(workdir: Path) -> Path:
    from converters.pipeline import ConvertRequest, Progress, convert
    from converters.synthetic import checkpoints as synthetic

    shape = synthetic.Shape(hidden=1024, intermediate=3072, layers=28, heads=16, kv_heads=8,
                            head_dim=128, vocab=151936)
    source = synthetic.build_qwen3(workdir / "qwen3-0.6b-src", shape=shape).path
    result = convert(ConvertRequest(base=str(source), name="qwen3-0.6b", out_dir=workdir / "out",
                                    quant="Q4_K_M"), Progress(enabled=False))
    return result.outputs[0]


def ensure_model(workdir: Path) -> Path:
    path = workdir / "out" / "qwen3-0.6b.Q4_K_M.gguf"
    if not path.is_file():
        print(f"building the synthetic Qwen3-0.6B-shaped model in {workdir} (about a minute)")
        run_phase("build", workdir=str(workdir))
    return path


# ---------------------------------------------------------------------------- phases


def engine_run(engine: Engine, messages: list[dict], tokens: int) -> dict[str, Any]:
    """One generation, consumed as a UI would; the engine's own stats. (Most tokens of this
    random model are vocabulary padding with no text, so time to first *token* it is.)"""
    final: Finished | None = None
    for event in engine.stream(messages, params={**SAMPLING, "num_predict": tokens},
                               think=False):
        if isinstance(event, AnswerDelta | ThinkingDelta):
            pass  # a UI would append the text here
        elif isinstance(event, Finished):
            final = event
    assert final is not None
    stats = final.stats
    return {"tps": stats.tokens_per_second, "tokens": stats.completion_tokens,
            "ttft_ms": stats.first_token_ms, "prompt_ms": stats.prompt_ms,
            "evaluated": stats.prompt_evaluated, "prompt_tokens": stats.prompt_tokens,
            "threads": stats.threads, "answer": final.answer}


def bare_run(llm: Any, prompt: list[int], tokens: int) -> dict[str, Any]:
    """llama-cpp-python's own loop with the same sampler chain: prompt read first, then
    `generate` (which finds the prompt cached and samples at once), timed like the engine:
    from the end of the prompt to the last token, EOG ends it as in the engine."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    llm.reset()
    llm.eval(prompt)
    started = time.perf_counter()
    count = 0
    for token in llm.generate(prompt, temp=SAMPLING["temperature"], top_k=SAMPLING["top_k"],
                              top_p=SAMPLING["top_p"], min_p=0.0,
                              repeat_penalty=SAMPLING["repeat_penalty"]):
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            break
        count += 1
        if count >= tokens:
            break
    seconds = time.perf_counter() - started
    return {"tps": count / seconds, "tokens": count}


def phase_speed(model: str, which: str, threads: int, tokens: int) -> dict[str, Any]:
    """One side of the comparison, alone in a fresh process (two models in one process
    share caches and memory bandwidth unevenly): a warm-up run, then the measured one."""
    import llama_cpp

    engine = Engine.load(model, n_ctx=2048, n_threads=threads)
    prompt = engine.prompt(QUESTION, think=False).tokens
    if which == "engine":
        engine_run(engine, QUESTION, 16)
        engine.reset()
        return engine_run(engine, QUESTION, tokens)
    engine.close()
    llm = llama_cpp.Llama(model, n_ctx=2048, n_threads=threads, n_threads_batch=threads,
                          seed=SAMPLING["seed"], verbose=False)
    bare_run(llm, prompt, 16)
    return bare_run(llm, prompt, tokens)


def speed(model: str, threads: int, tokens: int, repeats: int) -> dict[str, Any]:
    runs: dict[str, list[float]] = {"engine": [], "bare": []}
    counts: dict[str, list[int]] = {"engine": [], "bare": []}
    for i in range(repeats):  # alternating order: a noisy neighbour hits both alike
        for which in ("engine", "bare") if i % 2 == 0 else ("bare", "engine"):
            result = run_phase("speed", model=model, which=which, threads=threads,
                               tokens=tokens)
            runs[which].append(result["tps"])
            counts[which].append(result["tokens"])
    return {"threads": threads, **runs, "tokens": counts["engine"],
            "bare_tokens": counts["bare"]}


def phase_turns(model: str, tokens: int) -> dict[str, Any]:
    engine = Engine.load(model)  # defaults: n_ctx 4096, adaptive threads
    messages: list[dict[str, str]] = [{"role": "system", "content": "You are a court clerk."}]
    turns = []
    for i in range(5):
        messages.append({"role": "user", "content": f"Case {i + 1}: the defendant took a "
                         "bicycle from the station, returned it two days later and "
                         "confessed at once. Which circumstances matter for the sentence?"})
        result = engine_run(engine, messages, tokens)
        messages.append({"role": "assistant", "content": result.pop("answer")})
        turns.append(result)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"turns": turns, "peak_rss_mb": peak_mb}


def phase_load(model: str, tokens: int, repeats: int) -> dict[str, Any]:
    adaptive = Engine.load(model, n_ctx=2048)
    all_cores = Engine.load(model, n_ctx=2048, n_threads=physical_cores())
    monitor = shared_monitor()
    time.sleep(1.5)  # a second of load history for the policy
    rows: dict[str, list[dict[str, Any]]] = {"idle": [], "busy": [], "busy_all_cores": []}
    for _ in range(repeats):
        rows["idle"].append({**engine_run(adaptive, QUESTION, tokens),
                             "others": monitor.others_busy_cores()})
        busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
        try:
            time.sleep(1.5)
            rows["busy"].append({**engine_run(adaptive, QUESTION, tokens),
                                 "others": monitor.others_busy_cores()})
            rows["busy_all_cores"].append({**engine_run(all_cores, QUESTION, tokens // 4),
                                           "others": monitor.others_busy_cores()})
        finally:
            busy.kill()
            busy.wait()
        time.sleep(1.5)  # let the load history forget the busy process
    for runs in rows.values():
        for run in runs:
            run.pop("answer")
    return rows


PHASES = {"speed": phase_speed, "turns": phase_turns, "load": phase_load}


def run_phase(name: str, **kwargs: Any) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--phase", name, "--args",
                           json.dumps(kwargs)], capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"phase {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(name: str, kwargs: dict[str, Any]) -> None:
    if name == "build":
        print(json.dumps({"model": str(build_model(Path(kwargs["workdir"])))}))
        return
    print(json.dumps(PHASES[name](**kwargs)))


# ---------------------------------------------------------------------------- report


def report(speed: dict[str, Any], turns: dict[str, Any], load: dict[str, Any]) -> None:
    ours, bare = statistics.median(speed["engine"]), statistics.median(speed["bare"])
    pairs = [a / b for a, b in zip(speed["engine"], speed["bare"], strict=True)]
    print(f"\n1. decode speed, {speed['threads']} thread(s), median of {len(speed['engine'])}, "
          f"each run in a fresh process")
    print(f"   Amicus engine      {ours:7.1f} tok/s   runs {_fmt(speed['engine'])}")
    print(f"   bare llama_cpp     {bare:7.1f} tok/s   runs {_fmt(speed['bare'])}")
    print(f"   ratio of medians   {ours / bare:7.3f}   (target >= 0.97)")
    print(f"   ratio of bests     {max(speed['engine']) / max(speed['bare']):7.3f}   "
          f"per adjacent pair {_fmt(pairs, 3)}")
    print(f"   tokens per run: engine {speed['tokens']}, bare {speed['bare_tokens']}")
    print("\n2. conversation (defaults: n_ctx 4096, adaptive threads)")
    print("   turn  prompt tok  evaluated  prompt ms  first token ms  threads")
    for i, t in enumerate(turns["turns"], 1):
        print(f"   {i:>4}  {t['prompt_tokens']:>10}  {t['evaluated']:>9}  "
              f"{t['prompt_ms']:>9.0f}  {t['ttft_ms']:>14.0f}  {t['threads']:>7}")
    print(f"   peak RSS of the engine process: {turns['peak_rss_mb']:.0f} MB")
    idle = statistics.median(r["tps"] for r in load["idle"])
    busy = statistics.median(r["tps"] for r in load["busy"])
    crowded = statistics.median(r["tps"] for r in load["busy_all_cores"])
    print(f"\n3. default thread policy, {physical_cores()} physical cores")
    for label, key, value in (("idle", "idle", idle), ("+1 busy process", "busy", busy),
                              ("+1 busy, all cores", "busy_all_cores", crowded)):
        runs = load[key]
        print(f"   {label:<20} {value:7.1f} tok/s   threads {[r['threads'] for r in runs]}  "
              f"measured load of others {[round(r['others'], 2) for r in runs]}")
    print(f"   busy / idle        {busy / idle:7.3f}   (target >= 0.5)")


def _fmt(values: list[float], digits: int = 1) -> str:
    return "[" + ", ".join(f"{v:.{digits}f}" for v in values) + "]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "build" / "bench-engine")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for part 1 (default: the policy's choice now)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--args", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        child(args.phase, json.loads(args.args))
        return
    model = str(ensure_model(args.workdir))
    threads = args.threads or ThreadPolicy().choose().threads
    print(f"model {model}\nllama.cpp: {_system_info()}")
    decode = speed(model, threads, args.tokens, args.repeats)
    turns = run_phase("turns", model=model, tokens=48)
    load = run_phase("load", model=model, tokens=args.tokens // 2, repeats=args.repeats)
    report(decode, turns, load)


def _system_info() -> str:
    from converters.llama_runtime import system_info

    return system_info()


if __name__ == "__main__":
    main()

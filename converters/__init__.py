"""The conversion pipeline: fine-tuned checkpoints to quantized GGUF files.

sources -> merge -> F16 GGUF -> calibrate -> quantize -> verify + quality report ->
outputs, one stage per folder: `checkpoint/` (where a checkpoint comes from, its config,
its tensors), `merge/` (LoRA adapters merged with peft's arithmetic), `gguf/` (the
writer, the vocabulary, one module per model family in `architectures/`), `quantize/`
(llama.cpp in-process, with an importance matrix collected on each assistant's
calibration text), `verify/` (the result loads, tokenizes like its source and runs; how
far it drifts from the merged F16), `outputs/` (atomic files and the manifest).
`pipeline.py` is the one place that strings them together; `ollama/` reads and writes
Ollama's formats; `synthetic/` holds the tiny faithful fixtures the tests and `amicus
demo` build (no pipeline module imports it). Errors derive from `errors.AmicusError`.
Never imports textual, torch or the app.
"""

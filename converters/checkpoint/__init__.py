"""Stage 1-2 of the pipeline: where a checkpoint comes from and what it holds.

`sources` resolves a local directory or a Hugging Face repo id@revision, `config` reads
config.json without transformers (defaults from the architecture registry), and
`safetensors_io` reads tensors lazily from memory-mapped (sharded) safetensors files.
"""

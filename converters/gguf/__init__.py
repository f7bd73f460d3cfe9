"""Stage 4: merged weights written as GGUF, one tensor at a time.

`writer` streams tensors into the file, `vocab` writes the tokenizer, and
`architectures/` holds one module per model family (registered: Hugging Face class names,
config defaults, vocabulary kind, tensor names and transforms).
"""

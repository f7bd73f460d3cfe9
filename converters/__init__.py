"""Checkpoint -> merged -> GGUF -> quantized -> Modelfile + manifest. Never imports textual."""

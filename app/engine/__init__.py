"""Inference on GGUF models through llama-cpp-python. Never imports textual."""

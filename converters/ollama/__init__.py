"""Ollama's formats: the Modelfile (an Ollama-exact parser and writer) and a local store."""

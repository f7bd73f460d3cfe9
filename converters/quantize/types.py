"""The output types `amicus convert --quant` offers. A module of its own, free of llama.cpp,
so that the command line can list them without loading it."""

from __future__ import annotations

QUANTIZED = ("Q4_K_M", "Q5_K_M", "Q8_0")  # llama.cpp quantizes them from an F16 GGUF
UNQUANTIZED = ("F16", "BF16", "F32")  # written directly by the converter
QUANT_CHOICES = QUANTIZED + UNQUANTIZED
IMATRIX_QUANTS = ("Q4_K_M", "Q5_K_M")  # K-quants: an importance matrix is collected by default
IMATRIX_OFF = "off"  # --imatrix off

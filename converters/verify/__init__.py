"""Stage 6: the written model loads, tokenizes like its source, and runs."""

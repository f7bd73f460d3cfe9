"""Stage 7: outputs appear atomically (staging) with their manifest (checksums, sources)."""

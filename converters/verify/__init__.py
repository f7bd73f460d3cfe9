"""Stage 6: the written model loads, tokenizes like its source, and runs (`checks`); how far
it drifts from the merged F16 and how that compares with the fine-tune's effect
(`quality`, with the base computed as the merged F16 minus the adapters: `unmerge`), and
those figures as lines for people (`summary`)."""

"""Stage 3: LoRA adapters merged into the base with peft's exact arithmetic.

`adapter_config` reads adapter_config.json and refuses what cannot be merged, `keys` maps
adapter tensor names onto base tensors, `arithmetic` is the float32 merge itself, `adapter`
validates one adapter and applies it to one tensor at a time, and `merged_weights` stacks
adapters over the base checkpoint.
"""

"""Stage 5: quantization in-process with llama.cpp.

`types` lists the output types (light: the command line imports it without llama.cpp);
`quantizer` calls llama_model_quantize.
"""

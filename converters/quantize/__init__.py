"""Stage 5: quantization in-process with llama.cpp.

`types` lists the output types (light: the command line imports it without llama.cpp);
`quantizer` calls llama_model_quantize; `imatrix` collects the importance matrix on
calibration text and reads and writes llama.cpp's imatrix files; `calibration/` holds the
calibration text of each assistant.
"""

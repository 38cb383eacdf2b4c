"""Model formats: recognise, load, check and save the four formats Slimforge accepts (TorchScript, torch.export
`.pt2`, ONNX, safetensors state dicts), with the hostile-file checks beside the loader they protect.

`model_io` detects and loads; `archives`, `export_checks`, `safe_expressions`, `torchscript_checks`, `onnx_checks`
and `safetensors_header` refuse what a loader would run or trust; `save_all` and `writers` produce the downloads.
"""

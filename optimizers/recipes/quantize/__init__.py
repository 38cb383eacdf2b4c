"""The quantize recipe: `recipe` registers it and picks a route from `optimizers.configs.quantize_routes` (the
table of which implementation runs each variant for each kind of model, torch-free so the web shares it). Each
route is a `quantizer.Quantizer` (`dynamic`, `static`, `export_fx`, `cast`, `onnx_routes`, `torchao_routes`);
`budget` and `sensitivity` keep the accuracy budget.
"""

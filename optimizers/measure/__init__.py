"""Measurement: the before/after report every recipe shares (`report`), and its parts: running a model and timing
it (`inference`), MACs (`macs`, `onnx_macs`), peak memory and GPU energy (`meters`), accuracy and fidelity to the
original (`fidelity`).
"""

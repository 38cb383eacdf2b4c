"""Datasets: read what a user uploads (npz, CSV, a zip of images) or a bundled set (digits) into one normal form.

The normal form is a `dataset.npz` with x float32 [N, ...], y int64 [N] and class_names (both optional).
This package's `__init__`, `errors`, `limits`, `options` and `compat` are standard library only, so the web
process can import them to check uploads and shapes before it queues a job; the rest needs numpy/torch/Pillow.
"""

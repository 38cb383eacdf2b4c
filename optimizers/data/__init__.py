"""Datasets: read what a user uploads (npz, CSV, a zip of images, texts) or a bundled set (digits) into one normal form.

The normal form is a `dataset.npz` with x float32 [N, ...] (or int64 token ids [N, L]), y int64 [N] and
class_names (both optional); a text dataset's holds its texts instead of x (`text_arrays`), which each job
tokenizes with its own model's tokenizer (`tokens`). This package's `__init__`, `errors`, `limits`, `options`
and `compat` are standard library only, so the web process can import them to check uploads and shapes before
it queues a job; the rest needs numpy/torch/Pillow (and `tokens` the `tokenizers` library).
"""

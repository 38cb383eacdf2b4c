"""The first-run samples: a small digits classifier and the built-in digits dataset, one button each.

The sample model goes the way of any upload (a safetensors state dict of a built-in architecture, inspected by a
worker in its sandbox); only its bytes are made here. The web process has no torch, so the state dict is written
with the standard library, initialised as `torch.nn.Linear` initialises itself. Its weights are untrained:
the sample exists so a first run has something to optimize, and a fine-tuning recipe trains it on the digits.
"""
import json
import math
import random
import struct

from django.core.files.uploadedfile import SimpleUploadedFile

from optimizers.zoo import MLPConfig
from webapp.models import Dataset, UploadedModel
from webapp.services.datasets import dataset_create
from webapp.services.uploads import model_create

SAMPLE_MODEL_NAME = "Sample digits classifier (MLP, untrained)"
SAMPLE_DATASET_NAME = "scikit-learn digits"
# The digits' samples are 1x8x8 images; the MLP flattens them, so it takes them as they are.
SAMPLE_INPUT_SHAPE = "1,1,8,8"
SAMPLE_CONFIG = MLPConfig(in_features=64, hidden=(64,), num_classes=10, dropout=0.1)


def sample_model_create(*, owner) -> UploadedModel:
    data = mlp_safetensors(SAMPLE_CONFIG, seed=owner.pk)
    upload = SimpleUploadedFile("sample-digits-mlp.safetensors", data, content_type="application/octet-stream")
    return model_create(owner=owner, upload=upload, name=SAMPLE_MODEL_NAME, input_shape=SAMPLE_INPUT_SHAPE,
                        architecture=MLPConfig.architecture, architecture_config=SAMPLE_CONFIG.to_dict())


def sample_dataset_create(*, owner) -> Dataset:
    return dataset_create(owner=owner, name=SAMPLE_DATASET_NAME, kind=Dataset.Kind.DIGITS)


def mlp_safetensors(config: MLPConfig, *, seed: int) -> bytes:
    """The safetensors bytes of a freshly initialised `optimizers.zoo.small_nets.MLP` with `config`.

    Its tensor names follow that module's `nn.Sequential`: a Flatten first, then Linear, ReLU, Dropout per hidden
    layer, then the last Linear. Uniform in +-1/sqrt(fan_in), as torch's Linear starts, so outputs stay moderate.
    """
    rng = random.Random(seed)
    tensors = {}
    sizes = [config.in_features, *config.hidden, config.num_classes]
    for layer, (inputs, outputs) in enumerate(zip(sizes, sizes[1:], strict=False)):
        index = 1 + 3 * layer
        bound = 1 / math.sqrt(inputs)
        tensors[f"layers.{index}.weight"] = ([outputs, inputs], [rng.uniform(-bound, bound)
                                                                 for _ in range(outputs * inputs)])
        tensors[f"layers.{index}.bias"] = ([outputs], [rng.uniform(-bound, bound) for _ in range(outputs)])
    return safetensors_bytes(tensors)


def safetensors_bytes(tensors: dict[str, tuple[list[int], list[float]]]) -> bytes:
    """float32 tensors ({name: (shape, values)}) in the safetensors layout: header length, JSON header, data."""
    header, blobs, offset = {}, [], 0
    for name, (shape, values) in tensors.items():
        blob = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header so the data starts 8-byte aligned
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)

"""The server's rules for an upload's fields, for the upload forms to check before a byte is sent.

The page reads them as JSON (static/js/upload.js), so the browser and the server check with the same numbers;
the server checks everything again.
"""
from django.conf import settings

from optimizers import shapes
from optimizers.data.options import TEXT_FORMATS
from webapp.models import Dataset
from webapp.services.sniff import MODEL_FILE_EXTENSIONS

# What each dataset kind's import reads (optimizers/data): the built-in digits take no file.
DATASET_FILE_EXTENSIONS = {Dataset.Kind.NPZ: [".npz"], Dataset.Kind.CSV: [".csv"], Dataset.Kind.IMAGES: [".zip"],
                           Dataset.Kind.TEXT: list(TEXT_FORMATS)}


def model_upload_rules() -> dict:
    return {
        "max_bytes": settings.MAX_UPLOAD_BYTES,
        "extensions": list(MODEL_FILE_EXTENSIONS),
        "input_shape": {"pattern": shapes.DIMS_PATTERN, "max_dims": shapes.MAX_DIMS,
                        "max_dim_size": shapes.MAX_DIM_SIZE, "max_elements": shapes.MAX_ELEMENTS},
        "dtypes": list(shapes.SUPPORTED_DTYPES),
    }


def dataset_upload_rules() -> dict:
    return {"max_bytes": settings.MAX_UPLOAD_BYTES,
            "extensions": {str(kind): names for kind, names in DATASET_FILE_EXTENSIONS.items()}}

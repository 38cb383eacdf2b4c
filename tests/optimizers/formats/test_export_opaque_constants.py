"""An "opaque" constant in a torch.export archive is refused before torch.export.load plain-unpickles it.

torch 2.13 stores opaque Python objects as constants whose path starts with OPAQUE_OBJ_FILENAME_PREFIX and loads
them with pickle.loads for that prefix alone; torch 2.11 has no such constants (nor the name), so there is nothing
of the kind to refuse there.
"""
import json
import pickle
import zipfile

import pytest
import torch
from torch.export.pt2_archive import constants as pt2

from optimizers.errors import ModelFileError
from optimizers.formats.model_io import load_model
from tests.optimizers.hostile_files import CreatesMarker, rewrite_zip

OPAQUE_PREFIX = getattr(pt2, "OPAQUE_OBJ_FILENAME_PREFIX", None)


@pytest.mark.skipif(OPAQUE_PREFIX is None, reason=f"torch {torch.__version__} stores no opaque constants")
def test_an_opaque_constant_is_refused_and_never_unpickled(mlp_pt2, tmp_path):
    marker = tmp_path / "MARKER"
    path_name, payload = f"{OPAQUE_PREFIX}0", pickle.dumps(CreatesMarker(marker))

    def add_opaque_constant(name: str, data: bytes) -> bytes:
        if not name.endswith("data/constants/model_constants_config.json"):
            return data
        # torch writes opaque constants with use_pickle set (refused as such); this one claims to be a raw uint8
        # tensor, so the use_pickle check passes it, and torch still pickle.loads it for its path's prefix.
        config = json.loads(data)
        config["config"]["evil"] = {"path_name": path_name, "is_param": False, "use_pickle": False, "tensor_meta": {
            "dtype": 1, "sizes": [{"as_int": len(payload)}], "requires_grad": False,
            "device": {"type": "cpu", "index": None}, "strides": [{"as_int": 1}], "storage_offset": {"as_int": 0},
            "layout": 7}}
        return json.dumps(config).encode()

    hostile = rewrite_zip(mlp_pt2, tmp_path / "opaque.pt2", add_opaque_constant)
    root = zipfile.ZipFile(hostile).namelist()[0].split("/")[0]
    with zipfile.ZipFile(hostile, "a") as archive:
        archive.writestr(f"{root}/data/constants/{path_name}", payload)

    with pytest.raises(ModelFileError, match="'evil' is stored as a pickled Python object"):
        load_model(hostile)
    assert not marker.exists()

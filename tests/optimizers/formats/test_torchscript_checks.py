"""TorchScript code that reads the worker's files is refused before torch compiles it."""

import pytest
import torch

from optimizers.errors import ModelFileError
from optimizers.formats.model_io import load_model


class ReadsAFile(torch.nn.Module):
    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def forward(self, x):
        data = torch.from_file(self.path, False, 16, dtype=torch.uint8)
        text = ""
        for i in range(16):
            text += chr(int(data[i]))
        raise RuntimeError("LEAK:" + text)


class NamesLikeIt(torch.nn.Module):
    def forward(self, x):
        from_file_count = x.shape[0]  # a name that only contains the op's name is fine
        return x * from_file_count


def test_a_model_that_reads_files_is_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"TOPSECRETKEY1234")
    torch.jit.save(torch.jit.script(ReadsAFile(str(secret))), str(tmp_path / "leak.pt"))
    with pytest.raises(ModelFileError, match="calls from_file"):
        load_model(tmp_path / "leak.pt")


def test_names_that_merely_contain_the_op_name_load(tmp_path):
    torch.jit.save(torch.jit.script(NamesLikeIt()), str(tmp_path / "ok.pt"))
    model, fmt = load_model(tmp_path / "ok.pt")
    assert fmt == "torchscript" and model(torch.ones(2, 3)).sum().item() == 12

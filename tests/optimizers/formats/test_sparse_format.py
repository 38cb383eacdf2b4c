"""The compressed sparse state dict reads back exactly and is far smaller than the dense one at 80% sparsity."""
import io
import zipfile

import pytest
import torch

from optimizers.formats.sparse_state_dict import (
    MEMBER,
    dense_size,
    encode_state_dict,
    load_sparse_state_dict,
    save_sparse_state_dict,
)


def _pruned_state(sparsity: float) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    state = {"fc1.weight": torch.randn(256, 64, generator=generator), "fc1.bias": torch.randn(256, generator=generator),
             "fc2.weight": torch.randn(10, 256, generator=generator).half(),
             "bn.num_batches_tracked": torch.tensor(7), "bn.running_var": torch.rand(256, generator=generator)}
    for name in ("fc1.weight", "fc2.weight"):
        weight = state[name]
        threshold = weight.abs().float().flatten().kthvalue(int(sparsity * weight.numel())).values
        state[name] = weight * (weight.abs().float() > threshold)
    return state


def test_the_state_dict_reads_back_exactly(tmp_path):
    state = _pruned_state(0.8)
    save_sparse_state_dict(state, tmp_path / "model.sparse.zip")
    loaded = load_sparse_state_dict(tmp_path / "model.sparse.zip")
    assert set(loaded) == set(state)
    for name, tensor in state.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name


def test_at_80_percent_sparsity_the_file_is_under_a_third_of_the_dense_state_dict():
    state = _pruned_state(0.8)
    ratio = len(encode_state_dict(state)) / dense_size(state)
    assert ratio <= 0.30  # the target is 0.35; bitmask + values + deflate give about 0.24


def test_dense_tensors_stay_dense():
    state = {"weight": torch.randn(32, 32)}  # nothing to gain: stored as it is
    with zipfile.ZipFile(io.BytesIO(encode_state_dict(state))) as bundle:
        payload = bundle.read(MEMBER)
    assert b"weight::mask" not in payload and len(encode_state_dict(state)) < 1.1 * dense_size(state)


def test_a_tampered_file_is_refused(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("something.bin", b"x")
    with pytest.raises(ValueError, match="not a Slimforge sparse state dict"):
        load_sparse_state_dict(path)


def test_reserved_names_are_refused():
    with pytest.raises(ValueError, match="reserved suffix"):
        encode_state_dict({"a::mask": torch.zeros(3)})

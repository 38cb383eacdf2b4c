"""Train/validation splits of a prepared dataset, and fitting samples to a model's input shape."""

import numpy as np
import pytest
import torch

from optimizers.data.compat import compatibility
from optimizers.data.splits import fit_to_input, load_splits


def dataset(tmp_path, x, y=None, class_names=None):
    arrays = {"x": np.asarray(x, dtype=np.float32)}
    if y is not None:
        arrays["y"] = np.asarray(y, dtype=np.int64)
        arrays["class_names"] = np.array(class_names or [str(i) for i in range(max(y) + 1)])
    path = tmp_path / "dataset.npz"
    np.savez_compressed(path, **arrays)
    return path


def test_the_same_dataset_splits_the_same_way_every_time(tmp_path):
    path = dataset(tmp_path, np.arange(100)[:, None], y=[i % 4 for i in range(100)])
    first, again, other_seed = load_splits(path), load_splits(path), load_splits(path, seed=1)
    for name in ("train_x", "train_y", "val_x", "val_y"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    assert not torch.equal(first.val_x, other_seed.val_x)
    assert first.class_names == ["0", "1", "2", "3"] and first.num_classes == 4


def test_every_class_keeps_its_share_in_validation(tmp_path):
    y = [0] * 50 + [1] * 10 + [2] * 5
    splits = load_splits(dataset(tmp_path, np.arange(65)[:, None], y=y), val_fraction=0.2)
    assert splits.val_y.bincount().tolist() == [10, 2, 1]
    assert splits.train_y.bincount().tolist() == [40, 8, 4]
    seen = torch.cat([splits.train_x, splits.val_x]).flatten().sort().values
    assert torch.equal(seen, torch.arange(65, dtype=torch.float32))  # a partition: nothing lost or repeated
    assert not torch.equal(splits.train_y, splits.train_y.sort().values)  # training order is shuffled


def test_without_labels_the_split_is_random_and_y_is_none(tmp_path):
    splits = load_splits(dataset(tmp_path, np.zeros((10, 2, 3))), val_fraction=0.3)
    assert (splits.train_x.shape, splits.val_x.shape) == ((7, 2, 3), (3, 2, 3))
    assert (splits.train_y, splits.val_y, splits.class_names, splits.num_classes) == (None, None, None, None)
    assert splits.train_x.dtype == torch.float32


def test_a_class_with_one_sample_stays_in_training(tmp_path):
    splits = load_splits(dataset(tmp_path, np.arange(5)[:, None], y=[0, 0, 0, 0, 1]), val_fraction=0.5)
    assert (splits.train_y.bincount().tolist(), splits.val_y.bincount().tolist()) == ([2, 1], [2])


def test_tiny_datasets_still_get_both_parts(tmp_path):
    splits = load_splits(dataset(tmp_path, [[1.0], [2.0]], y=[0, 1]), val_fraction=0.2)
    assert (len(splits.train_x), len(splits.val_x)) == (1, 1)
    with pytest.raises(ValueError, match="val_fraction must be between 0 and 1"):
        load_splits(dataset(tmp_path, [[1.0], [2.0]]), val_fraction=1.0)


# (per-sample shape of the data, the model's input shape, the fitted per-sample shape or None when refused)
FIT_CASES = [
    ((1, 8, 8), (1, 1, 8, 8), (1, 8, 8)),
    ((1, 8, 8), (1, 3, 32, 32), (3, 32, 32)),
    ((3, 10, 20), (1, 1, 10, 20), (1, 10, 20)),
    ((3, 64, 64), (1, 3, 16, 16), (3, 16, 16)),
    ((8, 8), (1, 1, 16, 16), (1, 16, 16)),
    ((8, 8), (1, 3, 8, 8), (3, 8, 8)),
    ((1, 8, 8), (1, 64), (64,)),
    ((5,), (1, 5), (5,)),
    ((4, 7), (4, 4, 7), (4, 7)),  # equal shapes pass whatever the model's batch
    ((1, 8, 8), (1, 100), None),
    ((2, 8, 8), (1, 3, 8, 8), None),
    ((3, 8, 8), (1, 4, 8, 8), None),
    ((64,), (1, 1, 8, 8), None),
    ((1, 8, 8), (1, 8, 8), None),
    ((3, 8, 8), (1, 3, 8, 8, 2), None),
    ((1, 8, 8), (1,), None),
]


@pytest.mark.parametrize(("sample", "model", "fitted"), FIT_CASES)
def test_fit_to_input_and_compatibility_agree(sample, model, fitted):
    x = torch.rand(2, *sample)
    reason = compatibility(sample, model)
    if fitted is None:
        with pytest.raises(ValueError) as raised:
            fit_to_input(x, model)
        assert reason == str(raised.value)
        assert reason.startswith("samples of shape [") and str(list(model)).replace(" ", "") in reason
    else:
        assert reason is None
        assert tuple(fit_to_input(x, model).shape) == (2, *fitted)


def test_fitting_keeps_the_picture():
    gray = torch.full((1, 1, 8, 8), 0.25)
    assert torch.allclose(fit_to_input(gray, (1, 3, 20, 20)), torch.full((1, 3, 20, 20), 0.25))
    rgb = torch.stack([torch.full((4, 4), value) for value in (0.3, 0.6, 0.9)])[None]
    assert torch.allclose(fit_to_input(rgb, (1, 1, 4, 4)), torch.full((1, 1, 4, 4), 0.6))
    counting = torch.arange(6.0).reshape(1, 1, 2, 3)
    assert fit_to_input(counting, (1, 6)).tolist() == [[0, 1, 2, 3, 4, 5]]
    assert fit_to_input(gray, (1, 1, 8, 8), dtype="float16").dtype == torch.float16


def test_integer_inputs_cannot_take_a_dataset():
    assert "takes int64 inputs" in compatibility((1, 8, 8), (1, 1, 8, 8), "int64")
    with pytest.raises(ValueError, match="takes int64 inputs"):
        fit_to_input(torch.zeros(1, 1, 8, 8), (1, 1, 8, 8), dtype="int64")

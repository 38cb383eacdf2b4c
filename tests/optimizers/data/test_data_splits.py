"""Train/validation splits of a prepared dataset, and fitting samples to a model's input shape."""

import numpy as np
import pytest
import torch

from optimizers.data.compat import compatibility, describe_fit
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


def test_float_samples_never_become_token_ids():
    reason = compatibility((1, 8, 8), (1, 1, 8, 8), "int64")
    assert reason.startswith("the model takes int64 token ids and the dataset holds float32 samples")
    with pytest.raises(ValueError) as raised:
        fit_to_input(torch.zeros(1, 1, 8, 8), (1, 1, 8, 8), dtype="int64")
    assert str(raised.value) == reason


def test_token_ids_pass_to_a_token_model_as_they_are_whatever_their_length():
    ids = torch.tensor([[101, 7, 30_000, 0, 0, 0, 0, 0, 0, 0, 0, 0]], dtype=torch.int64)  # 12 ids; the example 8
    assert compatibility((12,), (1, 8), "int64", "int64") is None
    fitted = fit_to_input(ids, (1, 8), dtype="int64")
    assert fitted.dtype == torch.int64 and torch.equal(fitted, ids)
    assert fit_to_input(ids.to(torch.int32), (1, 8), dtype="int64").dtype == torch.int64
    beyond_float = torch.tensor([[2**53 + 1, 3]])  # a trip through float32 or float64 would change it
    assert torch.equal(fit_to_input(beyond_float, (1, 2), dtype="int64"), beyond_float)


def test_token_ids_of_another_rank_are_refused_with_the_reason():
    reason = compatibility((2, 12), (1, 8), "int64", "int64")
    assert "token ids of shape [2,12] cannot feed a model that takes [1,8]" in reason
    with pytest.raises(ValueError, match="1 dimension"):
        fit_to_input(torch.zeros(3, 2, 12, dtype=torch.int64), (1, 8), dtype="int64")


def test_integer_samples_feed_a_float_model_as_float_values(tmp_path):
    path = tmp_path / "ids.npz"
    np.savez(path, x=np.arange(40, dtype=np.int64).reshape(10, 4))
    splits = load_splits(path)
    assert splits.train_x.dtype == torch.int64 and splits.val_x.dtype == torch.int64  # kept as the dataset holds
    fitted = fit_to_input(splits.val_x, (1, 4))
    assert fitted.dtype == torch.float32 and torch.equal(fitted, splits.val_x.float())
    assert compatibility((4,), (1, 4), "float32", "int64") is None
    assert describe_fit((4,), (1, 4), "float32", "int64").endswith("cast from int64 to float32.")


def test_texts_feed_only_a_model_with_a_tokenizer():
    assert "needs a Hugging Face folder model" in compatibility(None, (1, 8), "int64", "text")
    assert "needs a Hugging Face folder model" in compatibility(None, (1, 64), "float32", "text")
    refused = compatibility(None, (1, 8), "int64", "text", folder_files=["config.json", "vocab.json"])
    assert refused.startswith("the model's folder has no tokenizer") and "vocab.json with merges.txt" in refused
    assert compatibility(None, (1, 8), "int64", "text", ["config.json", "vocab.json", "merges.txt"]) is None
    assert compatibility(None, (1, 8), "int64", "text", ["tokenizer.json"]) is None
    assert "float32 inputs" in compatibility(None, (1, 8), "float32", "text", ["tokenizer.json"])

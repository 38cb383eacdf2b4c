"""Text datasets tokenized at job time by the model's own tokenizer: BERT WordPiece rows, byte-level BPE blocks."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from optimizers.data.errors import DatasetError
from optimizers.data.splits import split_indices
from optimizers.data.text_arrays import SEQUENCE_LENGTH, pack_texts
from optimizers.data.tokens import describe_tokenized, load_tokenizer, token_splits
from optimizers.errors import ModelFileError
from optimizers.formats.model_io import load_model
from tests.hf_folders import BPE_TEXTS, END_OF_TEXT, VOCAB, bert_folder, decoder_folder, zip_folder

pytest.importorskip("transformers")

# Label 1 exactly when the text says "model": a row that lost its label (or got another's) shows.
TEXTS = ["the small model", "a b c", "model the small the the", "abc def", "z y x w", "the model", "small", "q"] * 3
LABELS = [int("model" in text) for text in TEXTS]


def text_dataset(path: Path, texts: list[str], sequence_length: int, labels: list[int] | None = None) -> Path:
    arrays = {**pack_texts(texts), SEQUENCE_LENGTH: np.array(sequence_length, dtype=np.int64)}
    if labels is not None:
        arrays.update(y=np.array(labels, dtype=np.int64), class_names=np.array(["other", "model"]))
    np.savez_compressed(path, **arrays)
    return path


def loaded(folder: Path, tmp: Path):
    model, _ = load_model(zip_folder(folder, tmp / f"{folder.name}.zip"))
    return model


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    bert_folder(root / "bert")
    return loaded(root / "bert", root)


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpt2")
    decoder_folder(root / "gpt2", "gpt2", tokenizer_files="vocab+merges")
    return loaded(root / "gpt2", root)


def test_an_encoder_gets_one_row_a_text_with_its_special_tokens_padding_and_label(bert, tmp_path):
    splits = token_splits(text_dataset(tmp_path / "d.npz", TEXTS, 8, LABELS), bert)
    cls, sep, pad = VOCAB.index("[CLS]"), VOCAB.index("[SEP]"), VOCAB.index("[PAD]")
    the, small, model = VOCAB.index("the"), VOCAB.index("small"), VOCAB.index("model")
    _, val = split_indices(len(TEXTS), np.array(LABELS), 0.2, 0)  # the split every job makes
    assert splits.val_x.dtype == torch.int64 and splits.val_x.shape == (len(val), 8)
    rows = {tuple(row) for row in torch.cat([splits.train_x, splits.val_x]).tolist()}
    assert (cls, the, small, model, sep, pad, pad, pad) in rows
    # Truncated to 8 with its [SEP] kept: "model the small the the" makes 7 tokens with both special ones.
    assert (cls, model, the, small, the, the, sep, pad) in rows
    assert splits.val_y.tolist() == [LABELS[index] for index in val]
    for x, y in ((splits.train_x, splits.train_y), (splits.val_x, splits.val_y)):  # each row kept its own label
        assert [int(model in row) for row in x.tolist()] == y.tolist()
    assert splits.class_names == ["other", "model"]
    assert splits.tokenized["layout"] == "rows" and splits.tokenized["sequence_length"] == 8
    assert describe_tokenized(splits.tokenized) == ("24 texts were tokenized by the model's tokenizer (tokenizer.json) "
                                                    "into 24 rows of 8 token ids, one a text (truncated or padded).")
    with torch.no_grad():
        assert bert(splits.val_x).shape == (len(val), 8, 32)


def test_a_bert_folder_with_only_vocab_txt_tokenizes_the_same(bert, tmp_path):
    folder = tmp_path / "plain"
    shutil.copytree(bert.directory, folder)
    (folder / "tokenizer.json").unlink()
    tokenizer, files = load_tokenizer(folder)
    reference, _ = load_tokenizer(bert.directory)
    assert files == ("vocab.txt",)
    for text in TEXTS[:8]:
        assert tokenizer.encode(text).ids == reference.encode(text).ids


def test_a_decoder_gets_the_texts_joined_with_its_end_token_and_cut_into_blocks(gpt2, tmp_path):
    splits = token_splits(text_dataset(tmp_path / "d.npz", BPE_TEXTS * 4, 16, [0, 1] * 8), gpt2)
    tokenizer, files = load_tokenizer(gpt2.directory)
    assert files == ("vocab.json", "merges.txt")
    eos = tokenizer.token_to_id(END_OF_TEXT)
    stream = []
    for text in BPE_TEXTS * 4:
        stream += ([eos] if stream else []) + tokenizer.encode(text).ids
    blocks = len(stream) // 16
    _, val = split_indices(blocks, None, 0.2, 0)
    assert splits.train_y is None and splits.val_y is None and splits.class_names is None  # labels dropped
    assert splits.val_x.tolist() == [stream[16 * i:16 * (i + 1)] for i in val]
    assert len(splits.train_x) + len(splits.val_x) == blocks
    joined = tokenizer.decode(stream[:blocks * 16], skip_special_tokens=False)  # the stream is the texts, in order
    assert joined.startswith(f"{BPE_TEXTS[0]}{END_OF_TEXT}{BPE_TEXTS[1]}{END_OF_TEXT}")
    note = describe_tokenized(splits.tokenized)
    assert note.startswith(f"16 texts were tokenized by the model's tokenizer (vocab.json + merges.txt), joined and "
                           f"cut into {blocks} blocks of 16 token ids")
    assert "labels are not used" in note
    with torch.no_grad():
        assert gpt2(splits.val_x).shape == (len(val), 16, tokenizer.get_vocab_size())


def test_a_llama_folder_with_tokenizer_json_and_few_tokens_gets_two_shorter_blocks(tmp_path):
    decoder_folder(tmp_path / "llama", "llama", tokenizer_files="tokenizer.json", max_positions=32)
    llama = loaded(tmp_path / "llama", tmp_path)
    splits = token_splits(text_dataset(tmp_path / "d.npz", ["the small model", "reads"], 64), llama)
    assert len(splits.train_x) == len(splits.val_x) == 1
    notes = splits.tokenized["notes"]
    assert notes[0] == "the dataset's sequence length 64 was cut to the model's 32 positions"
    assert "fewer than two blocks of 32: cut into two blocks of" in notes[1]


def test_a_folder_without_a_tokenizer_is_refused_with_the_reason(tmp_path):
    decoder_folder(tmp_path / "bare", "gpt2", tokenizer_files="none")
    bare = loaded(tmp_path / "bare", tmp_path)
    with pytest.raises(ModelFileError) as refused:
        token_splits(text_dataset(tmp_path / "d.npz", TEXTS, 16), bare)
    assert str(refused.value).startswith("the model's folder has no tokenizer to make token ids of the texts (it "
                                         "needs one of: tokenizer.json, vocab.txt, vocab.json with merges.txt)")


def test_a_tokenizer_past_the_models_vocabulary_is_refused(bert, tmp_path):
    folder = tmp_path / "mismatched"
    shutil.copytree(bert.directory, folder)
    (folder / "tokenizer.json").unlink()
    (folder / "vocab.txt").write_text("\n".join([*VOCAB, *(f"extra{i}" for i in range(10)), "zebra"]) + "\n")
    bert.directory, original = str(folder), bert.directory
    try:
        with pytest.raises(ModelFileError, match=r"not this model's: token id 44 is past the model's vocabulary of 34"):
            token_splits(text_dataset(tmp_path / "d.npz", ["a zebra", "the zebra"], 8), bert)
    finally:
        bert.directory = original


def test_a_numeric_dataset_is_not_tokenized(bert, tmp_path):
    np.savez(tmp_path / "x.npz", x=np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(DatasetError, match="no texts to tokenize"):
        token_splits(tmp_path / "x.npz", bert)

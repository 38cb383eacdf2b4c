"""A text dataset made into token ids by the job's model's own tokenizer: the same DataSplits as `load_splits`.

A dataset is uploaded without a model, so its texts are tokenized when a job runs, by the tokenizer files in
the model's unpacked Hugging Face folder (`model.directory`): tokenizer.json, else a BERT WordPiece vocab.txt,
else a GPT-2 byte-level BPE vocab.json with merges.txt. The `tokenizers` library reads them offline and runs no
code from them (no `transformers.AutoTokenizer`, never remote code).

Encoders (`not model.is_decoder`) get one row per text: the special tokens the tokenizer adds, truncated to the
sequence length and padded to it with the model's pad id, which the model masks itself; labels stay with their
rows. Decoders get every text joined (the end-of-text token between them, when there is one) and cut into blocks
of the sequence length, the input of perplexity; labels are dropped. The split is `split_indices`', so it is the
same in every job. `model` is any object with `directory`, `is_decoder`, `pad_token_id` and `folder.config`
(`optimizers.formats.hf_folder.TokenIdsModel`), which this package does not import.
"""

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from optimizers.data import limits
from optimizers.data.compat import TOKENIZER_FILE_SETS, tokenizer_files_used
from optimizers.data.errors import DatasetError
from optimizers.data.splits import DataSplits, split_arrays
from optimizers.data.text_arrays import SEQUENCE_LENGTH, TEXT_BYTES, TEXT_OFFSETS, is_text_dataset, unpack_texts
from optimizers.errors import ModelFileError, first_line

_ENCODE_CHUNK = 4096


def is_text_npz(npz_path: str | os.PathLike) -> bool:
    with np.load(npz_path, allow_pickle=False) as data:
        return is_text_dataset(data.files)


def token_splits(npz_path: str | os.PathLike, model: Any, val_fraction: float = 0.2, seed: int = 0) -> DataSplits:
    """The text dataset at `npz_path` tokenized for `model`, split into train and validation token ids (int64)."""
    texts, y, class_names, wanted_length = _read(npz_path)
    tokenizer, files = load_tokenizer(model.directory)
    config = model.folder.config
    length, notes = _fitted_length(wanted_length, config)
    if model.is_decoder:
        ids, block_notes = _blocks(tokenizer, texts, length, _special_id(tokenizer, model.directory, config, "eos"))
        length = ids.shape[1]
        notes += block_notes + (["labels are not used: a decoder is measured on blocks of text"] if y is not None
                                else [])
        y, class_names = None, None
        layout = "blocks"
    else:
        pad_id, pad_note = _pad_id(tokenizer, model, config)
        ids = _rows(tokenizer, texts, length, pad_id)
        notes += [pad_note] if pad_note else []
        layout = "rows"
    problem = vocabulary_problem(ids, config)
    if problem:
        raise ModelFileError(f"the folder's tokenizer is not this model's: {problem}")
    tokenized = {"tokenizer": " + ".join(files), "layout": layout, "texts": len(texts), "rows": len(ids),
                 "sequence_length": length, "notes": notes}
    return split_arrays(ids, y, class_names, val_fraction, seed, tokenized)


def describe_tokenized(tokenized: dict[str, Any]) -> str:
    """The report's sentence on how the texts became token ids."""
    what = (f"{tokenized['texts']:,} texts were tokenized by the model's tokenizer ({tokenized['tokenizer']})"
            + (f" into {tokenized['rows']:,} rows of {tokenized['sequence_length']} token ids, one a text (truncated "
               "or padded)" if tokenized["layout"] == "rows" else
               f", joined and cut into {tokenized['rows']:,} blocks of {tokenized['sequence_length']} token ids"))
    return "; ".join([what, *tokenized["notes"]]) + "."


def _read(npz_path: str | os.PathLike) -> tuple[list[str], np.ndarray | None, list[str] | None, int]:
    with np.load(npz_path, allow_pickle=False) as data:
        if not is_text_dataset(data.files):
            raise DatasetError("the dataset holds no texts to tokenize")
        try:
            texts = unpack_texts(data[TEXT_BYTES], data[TEXT_OFFSETS])
        except (ValueError, UnicodeDecodeError) as error:
            raise DatasetError(f"the prepared text dataset is corrupt: {first_line(error)}") from error
        length = int(data[SEQUENCE_LENGTH]) if SEQUENCE_LENGTH in data.files else limits.DEFAULT_SEQUENCE_LENGTH
        y = data["y"].astype(np.int64, copy=False) if "y" in data.files else None
        names = [str(name) for name in data["class_names"]] if y is not None else None
    if len(texts) < limits.MIN_SAMPLES:
        raise DatasetError(f"a dataset of {len(texts)} text(s) cannot be split; at least {limits.MIN_SAMPLES} are "
                           "needed")
    return texts, y, names, length


def load_tokenizer(directory: str | os.PathLike | None) -> tuple[Any, tuple[str, ...]]:
    """The folder's tokenizer and the files it was read from; ModelFileError when it has none Slimforge reads."""
    folder = Path(directory) if directory else None
    files = tokenizer_files_used(os.listdir(folder)) if folder and folder.is_dir() else None
    if files is None:
        wanted = ", ".join(" with ".join(names) for names in TOKENIZER_FILE_SETS)
        raise ModelFileError(f"the model's folder has no tokenizer to make token ids of the texts (it needs one of: "
                             f"{wanted}); upload the Hugging Face folder with its tokenizer files")
    # The Rust tokenizer spreads a batch over threads: as many as the job was given for torch, not every core.
    os.environ.setdefault("RAYON_NUM_THREADS", str(max(1, torch.get_num_threads())))
    from tokenizers import Tokenizer
    from tokenizers.implementations import BertWordPieceTokenizer, ByteLevelBPETokenizer

    paths = [str(folder / name) for name in files]
    try:
        if files == ("tokenizer.json",):
            tokenizer = Tokenizer.from_file(paths[0])
        elif files == ("vocab.txt",):
            lowercase = _tokenizer_config(folder).get("do_lower_case", True)
            tokenizer = BertWordPieceTokenizer(paths[0], lowercase=bool(lowercase))
        else:
            tokenizer = ByteLevelBPETokenizer(*paths)
    except Exception as error:  # noqa: BLE001 - the Rust library raises its own exception types
        raise ModelFileError(f"the model's tokenizer ({', '.join(files)}) cannot be read: {first_line(error)}") \
            from error
    tokenizer.no_truncation()  # a tokenizer.json may carry its own settings: ours are set per use
    tokenizer.no_padding()
    return tokenizer, files


def _tokenizer_config(folder: Path) -> dict[str, Any]:
    """tokenizer_config.json merged over special_tokens_map.json (both optional; hf_folder bounded their sizes)."""
    merged: dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        merged.update(data if isinstance(data, dict) else {})
    return merged


def _fitted_length(wanted: int, config: dict[str, Any]) -> tuple[int, list[str]]:
    """The dataset's sequence length, cut to the positions the model has (it cannot read past them)."""
    positions = config.get("max_position_embeddings", config.get("n_positions"))
    if isinstance(positions, int) and 0 < positions < wanted:
        return positions, [f"the dataset's sequence length {wanted} was cut to the model's {positions} positions"]
    return wanted, []


def _special_id(tokenizer: Any, directory: Any, config: dict[str, Any], which: str) -> int | None:
    """The id of the model's end-of-text (or pad) token: the config's, else the tokenizer config's token."""
    value = config.get(f"{which}_token_id")
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    token = _tokenizer_config(Path(directory)).get(f"{which}_token")
    if isinstance(token, dict):  # an AddedToken written out: {"content": "</s>", ...}
        token = token.get("content")
    return tokenizer.token_to_id(token) if isinstance(token, str) else None


def _pad_id(tokenizer: Any, model: Any, config: dict[str, Any]) -> tuple[int, str | None]:
    if model.pad_token_id is not None:
        return model.pad_token_id, None
    found = _special_id(tokenizer, model.directory, config, "pad")
    pad = found if found is not None else 0
    return pad, (f"the model's config names no pad_token_id, so the padding (id {pad}) of texts shorter than the "
                 "sequence length is not masked")


def _encoded(tokenizer: Any, texts: list[str], **options: Any) -> Iterator[list[int]]:
    """Each text's ids, encoded a chunk at a time: a million encodings at once would hold all their tokens,
    offsets and masks in memory together."""
    for start in range(0, len(texts), _ENCODE_CHUNK):
        for encoding in tokenizer.encode_batch(texts[start:start + _ENCODE_CHUNK], **options):
            yield encoding.ids


def _rows(tokenizer: Any, texts: list[str], length: int, pad_id: int) -> np.ndarray:
    tokenizer.enable_truncation(max_length=length)  # the special tokens it adds are kept within the length
    ids = np.full((len(texts), length), pad_id, dtype=np.int64)
    for row, encoded in enumerate(_encoded(tokenizer, texts)):
        ids[row, :len(encoded)] = encoded
    return ids


def _blocks(tokenizer: Any, texts: list[str], length: int, eos_id: int | None) -> tuple[np.ndarray, list[str]]:
    separator = np.array([eos_id] if eos_id is not None else [], dtype=np.int64)
    pieces: list[np.ndarray] = []
    for encoded in _encoded(tokenizer, texts, add_special_tokens=False):
        if pieces:
            pieces.append(separator)
        pieces.append(np.asarray(encoded, dtype=np.int64))
    stream = np.concatenate(pieces)
    notes = [] if eos_id is not None else ["the tokenizer has no end-of-text token: texts were joined without one"]
    if len(stream) < 2 * length:  # a split needs two blocks: shorter ones rather than none
        shorter = len(stream) // 2
        if shorter < 2:
            raise DatasetError(f"the texts make only {len(stream)} token(s); a decoder needs at least 4 to measure")
        notes.append(f"the texts make {len(stream):,} tokens, fewer than two blocks of {length}: cut into two "
                     f"blocks of {shorter}")
        length = shorter
    blocks = len(stream) // length
    dropped = len(stream) - blocks * length
    if dropped:
        notes.append(f"the last {dropped} token(s), short of a block, were left out")
    return stream[:blocks * length].reshape(blocks, length), notes


def vocabulary_problem(ids: np.ndarray | torch.Tensor, config: dict[str, Any]) -> str | None:
    """None when every id is one of the model's tokens, else what is wrong (an embedding would fail on it)."""
    vocabulary = config.get("vocab_size")
    largest = int(ids.max()) if len(ids) and ids.size else None  # works for numpy arrays and tensors
    if isinstance(vocabulary, int) and largest is not None and largest >= vocabulary:
        return f"token id {largest} is past the model's vocabulary of {vocabulary} tokens (ids 0..{vocabulary - 1})"
    return None

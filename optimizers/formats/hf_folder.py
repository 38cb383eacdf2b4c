"""Hugging Face model folders, uploaded as one zip: `config.json`, `*.safetensors` weights, tokenizer files.

The model is built by `transformers` from its config, for the families below only, never with remote code and
never from pickles: the weights come only from safetensors, so this format runs no code from the upload. The
zip is checked from its table of contents and its config before anything is written to disk (`check_hf_zip`),
then unpacked file by file into a private folder with every size checked as it inflates (`unpack_hf_zip`).

The loaded model is wrapped to take a tensor of token ids and give back one tensor (the last hidden state of an
encoder, the logits of a language or classification head), like every other format's model.
"""
import json
import math
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from torch import nn

from optimizers.errors import ModelFileError, first_line

HF = "hf"
# config.json's model_type -> the architectures built for it, and what each returns as its one tensor.
FAMILIES: dict[str, dict[str, str]] = {
    "bert": {"BertModel": "last_hidden_state", "BertForSequenceClassification": "logits"},
    "gpt2": {"GPT2Model": "last_hidden_state", "GPT2LMHeadModel": "logits"},
    "llama": {"LlamaModel": "last_hidden_state", "LlamaForCausalLM": "logits"},
    "qwen2": {"Qwen2Model": "last_hidden_state", "Qwen2ForCausalLM": "logits"},
    "mistral": {"MistralModel": "last_hidden_state", "MistralForCausalLM": "logits"},
}
CONFIG = "config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "merges.txt", "vocab.json", "added_tokens.json", "generation_config.json")
# Weights in any of these are pickles (or formats that are), which can run code when loaded.
_PICKLED = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".h5", ".msgpack", ".joblib")
_CODE = (".py", ".pyc", ".so", ".dylib", ".dll", ".sh")
_FILE_KEYS = ("vocab_file", "merges_file", "tokenizer_file")  # tokenizer_config.json entries that name files
MAX_CONFIG_BYTES = 1024 * 1024
MAX_FILES = 200
MAX_FOLDER_BYTES = 64 * 1024 ** 3
# Weights barely compress: a member that inflates more than this is a zip bomb (tiny members may compress well).
MAX_COMPRESSION_RATIO = 100
RATIO_CHECK_MIN_BYTES = 1024 * 1024
SHARD_INDEX = "model.safetensors.index.json"
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class HfFolder:
    """What the zip holds, found from its table of contents and its config alone."""

    root: str  # the one folder every member sits in ("" when they sit at the top)
    files: tuple[str, ...]  # member names below the root
    model_type: str
    architecture: str
    config: dict[str, Any]


def is_hf_zip(names: list[str]) -> bool:
    """Whether a zip's member names look like a Hugging Face folder (a config.json at its root)."""
    return any(PurePosixPath(name).name == CONFIG and name.count("/") <= 1 for name in names)


def check_hf_zip(path: str | os.PathLike) -> HfFolder:
    """The folder's description; ModelFileError naming what is refused (remote code, pickles, escaping paths)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            root, files = _layout(infos)
            config = _read_json(archive, root + CONFIG, MAX_CONFIG_BYTES)
            tokenizer_config = (_read_json(archive, root + "tokenizer_config.json", MAX_CONFIG_BYTES)
                                if "tokenizer_config.json" in files else {})
            index = _read_json(archive, root + SHARD_INDEX, MAX_CONFIG_BYTES) if SHARD_INDEX in files else {}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise ModelFileError(f"the Hugging Face folder's zip is unreadable: {first_line(error)}") from error
    model_type, architecture = _check_config(config)
    _check_tokenizer_config(tokenizer_config, files)
    _check_shard_index(index, files)
    return HfFolder(root, tuple(files), model_type, architecture, config)


def _layout(infos: list[zipfile.ZipInfo]) -> tuple[str, list[str]]:
    if len(infos) > MAX_FILES:
        raise ModelFileError(f"the Hugging Face folder holds {len(infos):,} files; the limit is {MAX_FILES}")
    names = []
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")  # as written: a path library would drop "." and "" parts
        if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise ModelFileError(f"the zip entry {name!r} points outside the folder; refused")
        if not info.is_dir() and parts[-1] in ("", "."):
            raise ModelFileError(f"the zip entry {name!r} has no file name; refused")
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise ModelFileError(f"the zip entry {name!r} is not a plain file (a link, device or pipe); refused")
        if info.flag_bits & 0x1:
            raise ModelFileError(f"the zip entry {name!r} is encrypted; upload an archive without a password")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_CHECK_MIN_BYTES and ratio > MAX_COMPRESSION_RATIO:
            raise ModelFileError(f"the zip entry {name!r} inflates {ratio:.0f} times its compressed size "
                                 f"(limit {MAX_COMPRESSION_RATIO}): a zip bomb?")
        if not info.is_dir():
            names.append(name)
    if len(set(names)) != len(names):
        raise ModelFileError("the zip holds the same file name twice; refused")
    tops = {name.split("/", 1)[0] for name in names if "/" in name}
    root = f"{tops.pop()}/" if len(tops) == 1 and all("/" in name for name in names) else ""
    files = [name[len(root):] for name in names]
    if CONFIG not in files:
        raise ModelFileError("a Hugging Face folder needs config.json at its top")
    for name in files:
        lower = name.lower()
        if "/" in name:
            raise ModelFileError(f"the Hugging Face folder has a subfolder ({name!r}); upload the model's own "
                                 "folder: config.json, *.safetensors and the tokenizer files side by side")
        if lower.endswith(_PICKLED):
            raise ModelFileError(f"{name!r} holds pickled weights, which can run code when loaded; Slimforge "
                                 "loads weights only from .safetensors (save them with save_pretrained, which "
                                 "writes safetensors by default)")
        if lower.endswith(_CODE):
            raise ModelFileError(f"{name!r} is code; Slimforge builds the model with transformers' own classes "
                                 "and never runs code from an upload")
    if not any(name.endswith(".safetensors") for name in files):
        raise ModelFileError("the Hugging Face folder has no .safetensors weights")
    return root, files


def _read_json(archive: zipfile.ZipFile, name: str, limit: int) -> dict:
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise ModelFileError(f"{PurePosixPath(name).name} is {info.file_size:,} bytes; the limit is {limit:,}")
    with archive.open(info) as stream:
        raw = stream.read(limit + 1)
    try:
        data = json.loads(raw[:limit])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{PurePosixPath(name).name} is not valid JSON: {first_line(error)}") from error
    if not isinstance(data, dict):
        raise ModelFileError(f"{PurePosixPath(name).name} must hold a JSON object")
    return data


def _check_config(config: dict) -> tuple[str, str]:
    if "auto_map" in config or config.get("trust_remote_code"):
        raise ModelFileError("config.json asks for remote code (auto_map); Slimforge builds models only with "
                             "transformers' own classes and never runs code from an upload")
    if config.get("quantization_config"):
        raise ModelFileError("config.json describes an already-quantized checkpoint (quantization_config); "
                             "upload the model's full-precision weights")
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        raise ModelFileError(f"config.json's model_type {model_type!r} is not one Slimforge builds; it builds "
                             f"{', '.join(sorted(FAMILIES))}")
    architectures = config.get("architectures") or [next(iter(FAMILIES[model_type]))]
    if not isinstance(architectures, list) or len(architectures) != 1 or architectures[0] not in FAMILIES[model_type]:
        raise ModelFileError(f"config.json's architectures {architectures!r} is not one Slimforge builds for "
                             f"{model_type}; it builds {', '.join(FAMILIES[model_type])}")
    return model_type, architectures[0]


def _check_tokenizer_config(tokenizer_config: dict, files: list[str]) -> None:
    if "auto_map" in tokenizer_config:
        raise ModelFileError("tokenizer_config.json asks for remote code (auto_map); refused")
    for key in _FILE_KEYS:
        value = tokenizer_config.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or value not in files:
            raise ModelFileError(f"tokenizer_config.json's {key} {value!r} points outside the folder; a tokenizer "
                                 "may name only files that are in it")


def _check_shard_index(index: dict, files: list[str]) -> None:
    weight_map = index.get("weight_map", {})
    if not isinstance(weight_map, dict):
        raise ModelFileError(f"{SHARD_INDEX}'s weight_map must be a JSON object")
    for shard in set(weight_map.values()):
        if not isinstance(shard, str) or shard not in files or not shard.endswith(".safetensors"):
            raise ModelFileError(f"{SHARD_INDEX} names the shard {shard!r}, which is not a .safetensors file in "
                                 "the folder")


def unpack_hf_zip(path: str | os.PathLike, folder: HfFolder, into: str | os.PathLike) -> Path:
    """Write the folder's files into `into` (an empty private folder), each stopped at its declared size."""
    target = Path(into)
    spent = 0
    with zipfile.ZipFile(path) as archive:
        for name in folder.files:
            info = archive.getinfo(folder.root + name)
            got = 0
            with archive.open(info) as source, open(target / name, "xb") as sink:
                while chunk := source.read(_CHUNK):
                    got += len(chunk)
                    spent += len(chunk)
                    if got > info.file_size:
                        raise ModelFileError(f"the zip entry {name!r} inflates past its declared size: a zip bomb?")
                    if spent > MAX_FOLDER_BYTES:
                        raise ModelFileError(f"the Hugging Face folder inflates past {MAX_FOLDER_BYTES:,} bytes")
                    sink.write(chunk)
    return target


# Architectures that predict the next token: perplexity and generation speed are measured for these.
CAUSAL_LM = ("GPT2LMHeadModel", "LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM")
DECODER_FAMILIES = ("gpt2", "llama", "qwen2", "mistral")


class TokenIdsModel(nn.Module):
    """A transformers model that takes a tensor of token ids and returns one tensor (`output`), with the folder
    it came from and the unpacked folder itself (`directory`: its tokenizer files tokenize text datasets).

    An encoder whose config names a padding id masks those positions itself, so a batch of padded sentences
    needs no second input (decoders are fed unpadded blocks of text and attend causally).
    """

    def __init__(self, model: nn.Module, output: str, folder: HfFolder, directory: str | None = None) -> None:
        super().__init__()
        self.model, self.output, self.folder, self.directory = model, output, folder, directory
        pad = folder.config.get("pad_token_id")
        self.pad_token_id = pad if isinstance(pad, int) and not self.is_decoder else None

    @property
    def is_decoder(self) -> bool:
        return self.folder.model_type in DECODER_FAMILIES

    @property
    def is_causal_lm(self) -> bool:
        return self.folder.architecture in CAUSAL_LM

    def example_ids(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Repeatable token ids of `shape` that are not padding: 1, 2, 3, .. through the vocabulary."""
        vocabulary = int(self.folder.config.get("vocab_size") or 2)
        ids = torch.arange(1, 1 + math.prod(shape)) % vocabulary
        if self.pad_token_id is not None:
            ids[ids == self.pad_token_id] = (self.pad_token_id + 1) % vocabulary
        return ids.reshape(shape).to(torch.int64)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.pad_token_id is None:
            return getattr(self.model(input_ids=input_ids), self.output)
        mask = (input_ids != self.pad_token_id).to(torch.int64)
        return getattr(self.model(input_ids=input_ids, attention_mask=mask), self.output)


def load_hf_folder(path: str | os.PathLike, folder: HfFolder, workdir: str | os.PathLike) -> TokenIdsModel:
    """Build the model from its config with transformers' own class and load its safetensors weights.

    `workdir` (empty, private) receives the unpacked folder and must outlive the model: the tokenizer is read
    from it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched: the folder is all there is
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    directory = unpack_hf_zip(path, folder, workdir)
    model_class = getattr(transformers, folder.architecture)
    try:
        # The attention kernel is ours to choose, not the config's (which may ask for one needing other packages).
        model = model_class.from_pretrained(directory, local_files_only=True, use_safetensors=True,
                                            trust_remote_code=False, dtype=torch.float32, attn_implementation="sdpa")
    except Exception as error:  # noqa: BLE001 - any failure inside transformers means an unusable folder
        raise ModelFileError(f"transformers could not build the {folder.architecture}: {first_line(error)}") \
            from error
    output = FAMILIES[folder.model_type][folder.architecture]
    return TokenIdsModel(model.eval(), output, folder, os.fspath(directory)).eval()


def write_hf_zip(model: TokenIdsModel, path: str | os.PathLike) -> None:
    """Write the model as a zipped Hugging Face folder: `save_pretrained`'s config.json and safetensors, and the
    upload's tokenizer files, so the download loads with `from_pretrained` (unzipped) and uploads again as it is."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hf-out-") as folder:
        model.model.save_pretrained(folder, safe_serialization=True)
        written = sorted(name for name in os.listdir(folder) if not name.startswith("."))
        tokenizer = [name for name in model.folder.files
                     if name in TOKENIZER_FILES and name not in written and model.directory
                     and os.path.isfile(os.path.join(model.directory, name))]
        # Weights barely compress: stored as they are, the zip writes (and a reader opens) them at disk speed.
        with zipfile.ZipFile(path, "w") as archive:
            for name in written:
                compression = zipfile.ZIP_STORED if name.endswith(".safetensors") else zipfile.ZIP_DEFLATED
                archive.write(os.path.join(folder, name), name, compress_type=compression)
            for name in tokenizer:
                archive.write(os.path.join(model.directory, name), name, compress_type=zipfile.ZIP_DEFLATED)


def describe(model: TokenIdsModel) -> dict[str, Any]:
    """The model page's facts: family, architecture, layers, hidden size, vocabulary, parameters, tokenizer."""
    folder, config = model.folder, model.folder.config
    return {
        "family": folder.model_type,
        "architecture": folder.architecture,
        "layers": config.get("num_hidden_layers", config.get("n_layer")),
        "hidden_size": config.get("hidden_size", config.get("n_embd")),
        "vocab_size": config.get("vocab_size"),
        "params": sum(p.numel() for p in model.parameters()),
        "tokenizer": sorted(name for name in folder.files if name in TOKENIZER_FILES),
    }

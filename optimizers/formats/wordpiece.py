"""WordPiece tokenizers of Hugging Face folders (BERT's): read the vocabulary, write it again with fewer tokens.

Vocabulary trimming (`optimizers.recipes.prune.vocabulary`) keeps some of a model's token ids, renumbered in their
order (the i-th kept id becomes id i); this module rewrites the folder's tokenizer files to match, so the trimmed
tokenizer gives the ids of the trimmed embedding: tokenizer.json (the WordPiece model's vocab, the added tokens,
the post-processor's and the padding's special ids), vocab.txt (one token a line: the line is the id), and the ids
in tokenizer_config.json's added_tokens_decoder and in added_tokens.json. Every other tokenizer file is copied as
it is (its tokens are named by their text). The files are read and written as JSON and text only: nothing runs.
"""
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optimizers.errors import ModelFileError, first_line
from optimizers.formats.hf_folder import MAX_CONFIG_BYTES, TOKENIZER_FILES

TOKENIZER_JSON, VOCAB_TXT = "tokenizer.json", "vocab.txt"
# BERT's special tokens: a vocab.txt alone is read by BertWordPieceTokenizer, which names these itself.
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_TOKENIZER_BYTES = 64 * 1024 * 1024  # a 250,000-token vocabulary's tokenizer.json is about 20 MB


@dataclass(frozen=True)
class WordPieceVocabulary:
    tokens: tuple[str, ...]  # by id
    specials: frozenset[int]  # ids that must stay whatever the texts use: added and special tokens, the unknown one
    prefix: str  # what marks a piece that continues a word: "##"
    files: tuple[str, ...]  # the files that hold ids (tokenizer.json and / or vocab.txt)


def read_wordpiece(directory: str | os.PathLike) -> WordPieceVocabulary:
    """The folder's WordPiece vocabulary; ModelFileError saying why when its tokenizer is not WordPiece."""
    folder = Path(directory)
    present = set(os.listdir(folder))
    if TOKENIZER_JSON in present:
        tokens, specials, prefix = _from_tokenizer_json(_json(folder / TOKENIZER_JSON, MAX_TOKENIZER_BYTES))
        if VOCAB_TXT in present and _vocab_txt(folder) != tokens:
            raise ModelFileError("tokenizer.json and vocab.txt list different tokens; the folder's tokenizer is "
                                 "ambiguous")
    elif VOCAB_TXT in present:
        tokens, specials, prefix = _vocab_txt(folder), set(), "##"
        specials |= {tokens.index(token) for token in BERT_SPECIALS if token in tokens}
    elif {"vocab.json", "merges.txt"} <= present:
        raise ModelFileError("the tokenizer is a byte-level BPE (vocab.json with merges.txt), GPT-2's kind: "
                             "vocabulary trimming is built for WordPiece tokenizers (BERT's)")
    else:
        raise ModelFileError("the folder has no tokenizer (tokenizer.json or vocab.txt) whose vocabulary could be "
                             "trimmed")
    index = {token: number for number, token in enumerate(tokens)}
    for name in _named_specials(folder, present):
        if name in index:
            specials.add(index[name])
    files = tuple(name for name in (TOKENIZER_JSON, VOCAB_TXT) if name in present)
    return WordPieceVocabulary(tuple(tokens), frozenset(specials), prefix, files)


def _json(path: Path, limit: int) -> Any:
    if path.stat().st_size > limit:
        raise ModelFileError(f"{path.name} is {path.stat().st_size:,} bytes; the limit is {limit:,}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path.name} is not valid JSON: {first_line(error)}") from error


def _from_tokenizer_json(data: Any) -> tuple[list[str], set[int], str]:
    model = data.get("model") if isinstance(data, dict) else None
    kind = model.get("type") if isinstance(model, dict) else None
    if kind != "WordPiece":
        raise ModelFileError(f"tokenizer.json's model is {kind or 'of no known type'}: vocabulary trimming is built "
                             "for WordPiece tokenizers (BERT's)")
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or sorted(vocab.values()) != list(range(len(vocab))):
        raise ModelFileError("tokenizer.json's WordPiece vocab does not number its tokens 0, 1, 2, ..")
    tokens = [""] * len(vocab)
    for token, number in vocab.items():
        tokens[number] = token
    specials = {entry["id"] for entry in data.get("added_tokens") or [] if isinstance(entry.get("id"), int)}
    if model.get("unk_token") in vocab:
        specials.add(vocab[model["unk_token"]])
    return tokens, specials, str(model.get("continuing_subword_prefix") or "##")


def _vocab_txt(folder: Path) -> list[str]:
    if (folder / VOCAB_TXT).stat().st_size > MAX_TOKENIZER_BYTES:
        raise ModelFileError(f"vocab.txt is larger than {MAX_TOKENIZER_BYTES:,} bytes")
    # One token a line; "\n" only (a token may hold other white space, as BERT's own reader allows).
    return (folder / VOCAB_TXT).read_text(encoding="utf-8").rstrip("\n").split("\n")


def _named_specials(folder: Path, present: set[str]) -> set[str]:
    """Tokens that special_tokens_map.json, tokenizer_config.json and added_tokens.json name (by their text)."""
    named: set[str] = set()

    def add(value: Any) -> None:
        if isinstance(value, str):
            named.add(value)
        elif isinstance(value, dict) and isinstance(value.get("content"), str):
            named.add(value["content"])
        elif isinstance(value, list):
            for item in value:
                add(item)

    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        if name in present:
            data = _json(folder / name, MAX_CONFIG_BYTES)
            for key, value in (data.items() if isinstance(data, dict) else []):
                if key.endswith("_token") or key in ("additional_special_tokens", "extra_special_tokens"):
                    add(value)
            for entry in (data.get("added_tokens_decoder") or {}).values() if isinstance(data, dict) else []:
                add(entry)
    if "added_tokens.json" in present:
        added = _json(folder / "added_tokens.json", MAX_CONFIG_BYTES)
        named |= set(added) if isinstance(added, dict) else set()
    return named


def write_trimmed(source: str | os.PathLike, target: str | os.PathLike, vocabulary: WordPieceVocabulary,
                  kept: list[int]) -> list[str]:
    """Write the source folder's tokenizer files into `target` for the kept ids (ascending; kept[i] becomes i).
    Returns the file names written."""
    source, target = Path(source), Path(target)
    renumbered = {old: new for new, old in enumerate(kept)}
    written = []
    for name in sorted(set(os.listdir(source)) & set(TOKENIZER_FILES)):
        if name == TOKENIZER_JSON:
            data = _json(source / name, MAX_TOKENIZER_BYTES)
            _renumber_tokenizer_json(data, vocabulary, kept, renumbered)
            (target / name).write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        elif name == VOCAB_TXT:
            (target / name).write_text("".join(vocabulary.tokens[old] + "\n" for old in kept), encoding="utf-8")
        elif name == "tokenizer_config.json":
            data = _json(source / name, MAX_CONFIG_BYTES)
            if isinstance(data, dict) and isinstance(data.get("added_tokens_decoder"), dict):
                data["added_tokens_decoder"] = {str(renumbered[int(key)]): value for key, value
                                                in data["added_tokens_decoder"].items() if int(key) in renumbered}
            (target / name).write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        elif name == "added_tokens.json":
            data = _json(source / name, MAX_CONFIG_BYTES)
            (target / name).write_text(json.dumps({token: renumbered[number] for token, number in data.items()
                                                   if number in renumbered}, ensure_ascii=False), encoding="utf-8")
        else:
            shutil.copyfile(source / name, target / name)
        written.append(name)
    return written


def _renumber_tokenizer_json(data: dict, vocabulary: WordPieceVocabulary, kept: list[int],
                             renumbered: dict[int, int]) -> None:
    def new_id(old: int) -> int:
        if old not in renumbered:
            raise ModelFileError(f"tokenizer.json names token id {old} as special, but it was not kept")
        return renumbered[old]

    data["model"]["vocab"] = {vocabulary.tokens[old]: new for new, old in enumerate(kept)}
    data["added_tokens"] = [{**entry, "id": new_id(entry["id"])} for entry in data.get("added_tokens") or []]
    if isinstance(data.get("padding"), dict) and isinstance(data["padding"].get("pad_id"), int):
        data["padding"]["pad_id"] = new_id(data["padding"]["pad_id"])
    if isinstance(data.get("post_processor"), dict):
        _renumber_processor(data["post_processor"], new_id)


def _renumber_processor(processor: dict, new_id) -> None:
    """The special-token ids a post-processor adds: TemplateProcessing's, BERT's and RoBERTa's, in a Sequence too."""
    kind = processor.get("type")
    if kind == "TemplateProcessing":
        for special in (processor.get("special_tokens") or {}).values():
            special["ids"] = [new_id(old) for old in special.get("ids", [])]
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for key in ("sep", "cls"):
            token, old = processor[key]
            processor[key] = [token, new_id(old)]
    elif kind == "Sequence":
        for inner in processor.get("processors") or []:
            _renumber_processor(inner, new_id)
    elif kind not in (None, "ByteLevel"):
        raise ModelFileError(f"tokenizer.json's post-processor {kind} is not one whose ids Slimforge can renumber")

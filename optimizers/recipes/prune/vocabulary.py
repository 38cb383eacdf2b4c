"""Vocabulary trimming (Ushio et al. 2023): drop the token embedding rows the user's texts never use.

A small encoder's token embedding is often half its parameters (all-MiniLM-L6-v2: 11.7 M of 22.7 M), yet the texts
of one use touch a few thousand of its 30,522 tokens. Trimming keeps
- the special tokens (the tokenizer's added tokens, every token its config files name, the config's *_token_id),
- every single-character token and every continuation of one character ("##a"): a word whose longer pieces were
  dropped is then split into smaller kept pieces, never into [UNK], so the result still tokenizes any text,
- the tokens of the training split,
- with a parameter target that leaves room for more rows, the tokens of lowest id up to that room (a WordPiece
  vocabulary such as BERT's lists its words roughly from the most frequent) that text can produce at all (BERT's
  pre-tokenizer splits off every punctuation character, so "[unused0]" never comes out of any text), so the trimming
  removes what the target asks and no more: every extra row kept is a word of other texts not split into pieces,
renumbers them in their order, and rewrites the folder's WordPiece tokenizer (`optimizers.formats.wordpiece`) so
it gives the new ids. WordPiece matches the longest piece first, so a word whose pieces were all kept is tokenized
exactly as before, and the model's outputs on such text do not change at all.

Built for Hugging Face BERT encoders with a WordPiece tokenizer; decoders (byte-level BPE, a language-model head
over every token) are refused. The job needs a text dataset: its validation texts are tokenized again by the new
tokenizer to judge the result (`optimizers.job_runner`).
"""
import dataclasses
import math
import tempfile
import unicodedata
from dataclasses import dataclass

import torch
from torch import nn

from optimizers.data.splits import DataSplits
from optimizers.data.tokens import load_tokenizer
from optimizers.errors import ModelFileError, RecipeError
from optimizers.formats.hf_folder import TokenIdsModel
from optimizers.formats.wordpiece import WordPieceVocabulary, read_wordpiece, write_trimmed

# The rewritten tokenizer must outlive the model (write_hf_zip reads it when the result is saved): kept here and
# removed when the process, a throwaway sandbox child, exits. A model may be deep-copied, so it cannot own them.
_TRIMMED_FOLDERS: list[tempfile.TemporaryDirectory] = []


@dataclass(frozen=True)
class TrimPlan:
    vocabulary: WordPieceVocabulary
    kept: tuple[int, ...]  # the old ids kept, ascending: kept[i] becomes id i
    rows: int  # embedding rows before (the config's vocab_size, which may exceed the tokenizer's)
    width: int  # the embedding's width
    specials: int  # how many were kept for each reason (a token counts under its first reason)
    characters: int
    training: int
    filled: int  # kept beyond those, in id order, because the parameter target left room for them

    @property
    def removed_params(self) -> int:
        return (self.rows - len(self.kept)) * self.width


def trim_applies(model: object) -> tuple[bool, str]:
    """Whether the model's vocabulary can be trimmed, and why not."""
    if not isinstance(model, TokenIdsModel):
        return False, ("vocabulary trimming is built for Hugging Face encoders with a WordPiece tokenizer; this model "
                       "is no Hugging Face folder")
    if model.is_decoder or model.folder.model_type != "bert":
        return False, (f"vocabulary trimming is built for BERT-like encoders with a WordPiece tokenizer; a "
                       f"{model.folder.model_type} model's tokenizer is byte-level BPE and its head predicts every "
                       "token")
    if model.model.get_output_embeddings() is not None:
        return False, f"the {model.folder.architecture} predicts tokens: its output layer would need every token"
    try:
        read_wordpiece(model.directory or "")
    except (ModelFileError, OSError) as error:
        return False, str(error)
    return True, "the vocabulary can be trimmed to the tokens the training texts use"


def room_for(model: TokenIdsModel, target_params_ratio: float, params: int) -> int | None:
    """How many embedding rows the model may keep and still have at most `target_params_ratio` of `params` left
    when nothing else is removed; None without a parameter target (trimming then keeps only the tokens it must)."""
    if target_params_ratio >= 1.0:
        return None
    rows, width = model.model.get_input_embeddings().weight.shape
    must_go = params - math.floor(target_params_ratio * params)
    return max(0, rows - math.ceil(must_go / width))


def plan_trim(model: TokenIdsModel, data: DataSplits, keep_at_most: int | None = None) -> TrimPlan:
    """Which token ids to keep: special, single-character, and those of the training split's rows; then, up to
    `keep_at_most` rows in all, the others of lowest id."""
    applicable, reason = trim_applies(model)
    if not applicable:
        raise RecipeError(reason)
    if data.tokenized is None:
        raise RecipeError("vocabulary trimming rewrites the tokenizer, so the result is judged on the validation "
                          "texts tokenized again by it: it needs a text dataset (an .npz of token ids has no texts)")
    vocabulary = read_wordpiece(model.directory)
    embedding = model.model.get_input_embeddings()
    rows, width = embedding.weight.shape
    size = len(vocabulary.tokens)
    if size > rows:
        raise RecipeError(f"the tokenizer has {size:,} tokens but the model's embedding only {rows:,} rows")
    specials = set(vocabulary.specials) | {value for key, value in model.folder.config.items()
                                           if key.endswith("_token_id") and isinstance(value, int) and value < size}
    single = len(vocabulary.prefix) + 1
    characters = {number for number, token in enumerate(vocabulary.tokens)
                  if len(token) == 1 or (len(token) == single and token.startswith(vocabulary.prefix))}
    training = {int(number) for number in torch.unique(data.train_x.to(torch.int64)) if 0 <= int(number) < size}
    needed = specials | characters | training
    room = max(0, min(keep_at_most, size) - len(needed)) if keep_at_most is not None else 0
    filled = [number for number, token in enumerate(vocabulary.tokens)
              if number not in needed and _producible(token, vocabulary.prefix)][:room]
    kept = tuple(sorted(needed.union(filled)))
    return TrimPlan(vocabulary, kept, rows, width, specials=len(specials), characters=len(characters - specials),
                    training=len(training - specials - characters), filled=len(filled))


def _producible(token: str, prefix: str) -> bool:
    """Whether BERT's pre-tokenizer can leave this token whole: it splits off white space and every punctuation
    character (BertPreTokenizer's: Unicode punctuation and ASCII's other non-alphanumeric signs)."""
    body = token[len(prefix):] if token.startswith(prefix) and len(token) > len(prefix) else token
    return len(body) <= 1 or not any(character.isspace() or _punctuation(character) for character in body)


def _punctuation(character: str) -> bool:
    code = ord(character)
    return 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126 \
        or unicodedata.category(character).startswith("P")


def apply_trim(model: TokenIdsModel, plan: TrimPlan) -> None:
    """Keep only the planned rows of the model's token embedding, and give it the rewritten tokenizer."""
    renumbered = {old: new for new, old in enumerate(plan.kept)}
    old_embedding = model.model.get_input_embeddings()
    config = {key: renumbered.get(value, value) if key.endswith("_token_id") and isinstance(value, int) else value
              for key, value in model.folder.config.items()}
    config["vocab_size"] = len(plan.kept)
    pad = config.get("pad_token_id")
    embedding = nn.Embedding(len(plan.kept), plan.width, padding_idx=pad if isinstance(pad, int) else None,
                             device=old_embedding.weight.device, dtype=old_embedding.weight.dtype)
    with torch.no_grad():
        index = torch.tensor(plan.kept, dtype=torch.int64, device=old_embedding.weight.device)
        embedding.weight.copy_(old_embedding.weight[index])
    embedding.weight.requires_grad_(old_embedding.weight.requires_grad)
    model.model.set_input_embeddings(embedding)
    for key in ("vocab_size", "pad_token_id"):
        if key in config:
            setattr(model.model.config, key, config[key])
    folder = tempfile.TemporaryDirectory(prefix="slimforge-vocab-")
    _TRIMMED_FOLDERS.append(folder)
    write_trimmed(model.directory, folder.name, plan.vocabulary, list(plan.kept))
    model.folder = dataclasses.replace(model.folder, config=config)
    model.directory = folder.name
    model.pad_token_id = pad if isinstance(pad, int) else None
    _check_tokenizer(folder.name, plan)


def _check_tokenizer(directory: str, plan: TrimPlan) -> None:
    """The rewritten tokenizer, read as a job reads it, gives every kept token its new id."""
    tokenizer, files = load_tokenizer(directory)
    wrong = [token for new, old in enumerate(plan.kept)
             if tokenizer.token_to_id(token := plan.vocabulary.tokens[old]) != new]
    ids = tokenizer.encode("a").ids
    if wrong or max(ids) >= len(plan.kept):
        raise RecipeError(f"the rewritten tokenizer ({', '.join(files)}) does not give the trimmed ids "
                          f"({len(wrong)} token(s) misnumbered, e.g. {wrong[:3]}; ids of 'a': {ids})")


def trim_note(plan: TrimPlan) -> str:
    kept = len(plan.kept)
    return (f"vocabulary trimmed: {kept:,} of {plan.rows:,} tokens kept ({plan.specials} special, {plan.characters:,}"
            f" single characters and their '{plan.vocabulary.prefix}' continuations, so any text still tokenizes, "
            f"{plan.training:,} more that the training texts use"
            + (f", and the {plan.filled:,} of lowest id among the rest, as many as the parameter target leaves room "
               f"for" if plan.filled else "")
            + f"), {plan.removed_params:,} embedding parameters "
            f"removed; the tokenizer files ({', '.join(plan.vocabulary.files)}) were rewritten to the new ids. Words "
            f"whose pieces were dropped are split into smaller kept pieces, so text unlike the training texts may "
            f"embed a little differently")

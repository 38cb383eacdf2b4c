"""Small Hugging Face folders made in the tests: transformers' real classes with random weights, written by
save_pretrained (safetensors), with real tokenizers: a BERT WordPiece vocabulary, and a byte-level BPE (GPT-2's
kind) trained here in a moment on a few sentences. Shared by the format, data, job and worker tests.
"""
import zipfile
from pathlib import Path

import torch

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz", "the", "model", "small"]
END_OF_TEXT = "<|endoftext|>"
WORDS = ["the", "model", "small", "a", "b", "c", "d", "e"]  # every one in VOCAB: a BERT folder reads them whole
BPE_TEXTS = ["the small model reads a text", "a byte level tokenizer splits words into pieces",
             "slimforge makes models smaller and faster", "every sentence here teaches the merges"]


def bert_folder(folder: Path, *, classes: int | None = None, max_positions: int = 64,
                vocab: list[str] = VOCAB) -> torch.nn.Module:
    """A 2-layer BERT (BertModel, or BertForSequenceClassification with `classes`) and its WordPiece tokenizer
    (vocab.txt, and the tokenizer.json transformers writes from it)."""
    import transformers

    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64,
                                     max_position_embeddings=max_positions, num_labels=classes or 2)
    torch.manual_seed(0)
    model_class = transformers.BertForSequenceClassification if classes else transformers.BertModel
    model = model_class(config).eval()
    model.save_pretrained(folder)
    # Given as a dict: transformers 5 takes `vocab`, and a vocab_file= keyword would be silently ignored.
    transformers.BertTokenizerFast(vocab={token: index for index, token in enumerate(vocab)}).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return model


def byte_level_bpe(vocab_size: int = 300):
    """A GPT-2-style byte-level BPE tokenizer trained on BPE_TEXTS, with the end-of-text token as id 0."""
    from tokenizers import ByteLevelBPETokenizer

    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(BPE_TEXTS, vocab_size=vocab_size, min_frequency=1, special_tokens=[END_OF_TEXT],
                                  show_progress=False)
    return tokenizer


def decoder_folder(folder: Path, family: str = "gpt2", *, tokenizer_files: str = "vocab+merges",
                   max_positions: int = 64) -> torch.nn.Module:
    """A 2-layer GPT2LMHeadModel or LlamaForCausalLM with a byte-level BPE tokenizer, written as vocab.json and
    merges.txt ("vocab+merges", GPT-2's own files), tokenizer.json ("tokenizer.json") or not at all ("none")."""
    import transformers

    tokenizer = byte_level_bpe()
    folder.mkdir(parents=True, exist_ok=True)
    eos = tokenizer.token_to_id(END_OF_TEXT)
    size = tokenizer.get_vocab_size()
    if family == "gpt2":
        config = transformers.GPT2Config(vocab_size=size, n_positions=max_positions, n_embd=32, n_layer=2, n_head=2,
                                         bos_token_id=eos, eos_token_id=eos)
        model_class = transformers.GPT2LMHeadModel
    else:
        config = transformers.LlamaConfig(vocab_size=size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=2,
                                          max_position_embeddings=max_positions, bos_token_id=eos, eos_token_id=eos)
        model_class = transformers.LlamaForCausalLM
    torch.manual_seed(1)
    model = model_class(config).eval()
    model.save_pretrained(folder)
    if tokenizer_files == "vocab+merges":
        tokenizer.save_model(str(folder))
    elif tokenizer_files == "tokenizer.json":
        tokenizer.save(str(folder / "tokenizer.json"))
    return model


def zip_folder(folder: Path, path: Path, root: str = "my-model", extra: dict[str, bytes] | None = None) -> Path:
    """The folder zipped as a user would upload it: its files under `root/` ("" for none), plus `extra` members."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.iterdir()):
            archive.write(file, f"{root}/{file.name}" if root else file.name)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def word_lines(count: int = 80) -> list[str]:
    """`count` short sentences of WORDS, 4 to 8 words each, in a fixed order: a text dataset's lines."""
    return [" ".join(WORDS[(i * 3 + k) % len(WORDS)] for k in range(4 + i % 5)) for i in range(count)]


def prepared_text_dataset(folder: Path, lines: list[str], sequence_length: int = 16) -> Path:
    """The lines as a .txt text dataset prepared by the dataset job (in process): the dataset.npz a run reads."""
    from optimizers.data.job import prepare_dataset
    from optimizers.job_spec import JobSpec
    from optimizers.reporters import NullReporter

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "texts.txt").write_text("\n".join(lines) + "\n")
    prepare_dataset(JobSpec.from_dict({"action": "dataset", "dataset_kind": "text",
                                       "dataset_source": str(folder / "texts.txt"),
                                       "dataset_options": {"sequence_length": sequence_length},
                                       "out_dir": str(folder / "prepared")}), NullReporter())
    return folder / "prepared" / "dataset.npz"

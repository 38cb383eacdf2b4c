"""Vocabulary trimming of a BERT's WordPiece tokenizer and token embedding: which tokens stay (special, single
characters and their continuations, the training texts'), the renumbered ids, a trimmed word split into kept
pieces (never [UNK]), outputs on text of kept tokens unchanged to the last bit, the folder from_pretrained and
`tokenizers` read back, the trimmed rows counted toward the parameter target in a job, and the refusals."""
import copy
import zipfile

import pytest
import torch

from optimizers.configs.prune import PruneConfig
from optimizers.data.splits import DataSplits
from optimizers.data.tokens import load_tokenizer, token_splits
from optimizers.errors import ConfigError, RecipeError
from optimizers.formats.hf_folder import write_hf_zip
from optimizers.formats.model_io import load_model
from optimizers.recipes.prune.vocabulary import apply_trim, plan_trim, room_for, trim_applies
from tests.hf_folders import bert_folder, decoder_folder, prepared_text_dataset, zip_folder

transformers = pytest.importorskip("transformers")

LETTERS = "abcdefghijklmnopqrstuvwxyz"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
USED = ["the", "small", "model", "fast"]  # the training texts' words
UNUSED = ["[unused0]", "word", "slim", "##er", "##est"]  # in the vocabulary, never in the training texts
VOCAB = [*SPECIALS[:1], "the", *SPECIALS[1:], "[unused0]", *LETTERS, "small", "word", *(f"##{c}" for c in LETTERS),
         "model", "##er", "slim", "fast", "##est", "!"]
LINES = [" ".join(USED[(i + k) % len(USED)] for k in range(3 + i % 3)) for i in range(40)]


@pytest.fixture
def bert(tmp_path):
    bert_folder(tmp_path / "bert", vocab=VOCAB)
    model, _ = load_model(zip_folder(tmp_path / "bert", tmp_path / "bert.zip"))
    return model


def _splits(tmp_path, model) -> DataSplits:
    return token_splits(prepared_text_dataset(tmp_path / "data", LINES, sequence_length=12), model)


def _trimmed(tmp_path, model):
    plan = plan_trim(model, _splits(tmp_path, model))
    trimmed = copy.deepcopy(model)
    apply_trim(trimmed, plan)
    return plan, trimmed


def test_the_kept_tokens_are_the_special_the_single_character_and_the_training_ones(tmp_path, bert):
    plan, trimmed = _trimmed(tmp_path, bert)
    kept = [VOCAB[old] for old in plan.kept]
    assert set(kept) == set(VOCAB) - set(UNUSED)
    assert kept == [token for token in VOCAB if token not in UNUSED]  # renumbered in their original order
    assert (plan.specials, plan.characters, plan.training) == (5, 53, 4)  # "!" is a single character too
    assert plan.removed_params == len(UNUSED) * 32
    assert trimmed.model.get_input_embeddings().weight.shape == (len(VOCAB) - len(UNUSED), 32)
    assert trimmed.folder.config["vocab_size"] == trimmed.model.config.vocab_size == len(VOCAB) - len(UNUSED)
    assert bert.model.get_input_embeddings().weight.shape[0] == len(VOCAB)  # the original is left alone


def test_a_parameter_target_with_room_keeps_the_tokens_of_lowest_id_back(tmp_path, bert):
    splits = _splits(tmp_path, bert)
    needed = len(VOCAB) - len(UNUSED)
    plan = plan_trim(bert, splits, keep_at_most=needed + 2)
    # "[unused0]" has the lowest id of the rest, but no text can give it: "[" is split off as punctuation.
    assert plan.filled == 2 and set(VOCAB) - {VOCAB[old] for old in plan.kept} == {"[unused0]", "slim", "##est"}
    params = sum(parameter.numel() for parameter in bert.parameters())
    room = room_for(bert, 0.99, params)
    assert params - (len(VOCAB) - room) * 32 <= 0.99 * params < params - (len(VOCAB) - room - 1) * 32
    assert room_for(bert, 1.0, params) is None


def test_ids_are_renumbered_and_a_trimmed_word_splits_into_kept_pieces(tmp_path, bert):
    plan, trimmed = _trimmed(tmp_path, bert)
    old, _ = load_tokenizer(bert.directory)
    new, _ = load_tokenizer(trimmed.directory)
    for new_id, old_id in enumerate(plan.kept):
        assert new.id_to_token(new_id) == old.id_to_token(old_id)
    assert old.encode("the smaller word").tokens == ["[CLS]", "the", "small", "##er", "word", "[SEP]"]
    encoded = new.encode("the smaller word")
    assert encoded.tokens == ["[CLS]", "the", "small", "##e", "##r", "w", "##o", "##r", "##d", "[SEP]"]
    assert "[UNK]" not in encoded.tokens and max(encoded.ids) < len(plan.kept)
    assert encoded.ids[0] == new.token_to_id("[CLS]") == VOCAB.index("[CLS]")  # before every trimmed token
    assert new.token_to_id("fast") == VOCAB.index("fast") - 4  # after [unused0], word, ##er and slim


def test_outputs_on_text_of_kept_tokens_are_the_originals_exactly(tmp_path, bert):
    _, trimmed = _trimmed(tmp_path, bert)
    old, _ = load_tokenizer(bert.directory)
    new, _ = load_tokenizer(trimmed.directory)
    texts = ["the small model", "model the fast", "a b c fast"]
    old_ids = torch.tensor([old.encode(text).ids for text in texts[:2]])
    new_ids = torch.tensor([new.encode(text).ids for text in texts[:2]])
    assert not torch.equal(old_ids, new_ids)  # the ids moved ...
    with torch.no_grad():
        assert torch.equal(trimmed(new_ids), bert(old_ids))  # ... and the outputs did not
        alone = texts[2]
        assert torch.equal(trimmed(torch.tensor([new.encode(alone).ids])), bert(torch.tensor([old.encode(alone).ids])))


def test_the_written_folder_loads_with_from_pretrained_and_both_tokenizer_files_agree(tmp_path, bert):
    plan, trimmed = _trimmed(tmp_path, bert)
    write_hf_zip(trimmed, tmp_path / "model.zip")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        archive.extractall(tmp_path / "unzipped")
    folder = tmp_path / "unzipped"
    again = transformers.BertModel.from_pretrained(folder, local_files_only=True).eval()
    assert again.config.vocab_size == len(plan.kept)
    from tokenizers import Tokenizer

    text = "the slim model, fastest!"
    ids = Tokenizer.from_file(str(folder / "tokenizer.json")).encode(text).ids
    assert transformers.AutoTokenizer.from_pretrained(folder)(text)["input_ids"] == ids
    assert (folder / "vocab.txt").read_text().split("\n")[:-1] == [VOCAB[old] for old in plan.kept]
    (folder / "tokenizer.json").unlink()  # the vocab.txt alone, read as a job reads it
    assert load_tokenizer(folder)[0].encode(text).ids == ids
    tensor = torch.tensor([ids])
    with torch.no_grad():
        assert torch.equal(again(input_ids=tensor).last_hidden_state, trimmed(tensor))


def test_trimming_is_refused_where_it_does_not_apply(tmp_path, bert):
    with pytest.raises(ConfigError, match="built for structured pruning"):
        PruneConfig(method="unstructured", trim_vocabulary=True)
    decoder_folder(tmp_path / "gpt2", "gpt2")
    gpt2, _ = load_model(zip_folder(tmp_path / "gpt2", tmp_path / "gpt2.zip", root=""))
    applicable, reason = trim_applies(gpt2)
    assert not applicable and "byte-level BPE" in reason
    ids = torch.randint(5, 40, (20, 8), generator=torch.Generator().manual_seed(0))
    with pytest.raises(RecipeError, match="needs a text dataset"):
        plan_trim(bert, DataSplits(ids[:16], None, ids[16:], None, input_dtype="int64"))


def test_a_job_counts_the_trimmed_rows_toward_the_target_and_judges_on_the_same_texts(tmp_path):
    from optimizers.job_runner import RETOKENIZED_NOTE, run_recipe
    from optimizers.job_spec import JobSpec
    from optimizers.reporters import NullReporter

    bert_folder(tmp_path / "bert", vocab=VOCAB)
    upload = zip_folder(tmp_path / "bert", tmp_path / "upload.zip")
    lines = LINES + ["the slim word", "a smaller model"]  # the validation split may hold words never trained on
    dataset = prepared_text_dataset(tmp_path / "data", lines, sequence_length=12)
    result = run_recipe(JobSpec.from_dict({
        "action": "run", "model_path": str(upload), "input_shape": [1, 12], "input_dtype": "int64",
        "recipe": "prune", "out_dir": str(tmp_path / "out"), "dataset_path": str(dataset),
        "config": {"method": "structured", "target_macs_ratio": 1.0, "target_params_ratio": 0.9, "agp_steps": 1,
                   "fine_tune_on": "original_outputs", "epochs": 1, "batch_size": 16, "trim_vocabulary": True}}),
        NullReporter())
    assert result["primary_format"] == "hf" and RETOKENIZED_NOTE in result["notes"]
    vocabulary = result["extras"]["vocabulary"]
    assert vocabulary["before"] == len(VOCAB) and vocabulary["kept"] < len(VOCAB)
    assert result["after"]["params"] <= 0.9 * result["before"]["params"]
    assert result["extras"]["heads"] == [[2, 2], [2, 2]]  # heads stay: the result is a folder with its tokenizer
    assert 0.5 < result["after"]["output_error"]["mean_cosine"] <= 1.0
    assert any(note.startswith("vocabulary trimmed:") for note in result["notes"])
    again, _ = load_model(tmp_path / "out" / result["formats"]["written"]["hf"])
    assert again.folder.config["vocab_size"] == vocabulary["kept"]
    assert load_tokenizer(again.directory)[0].get_vocab_size() == vocabulary["kept"]

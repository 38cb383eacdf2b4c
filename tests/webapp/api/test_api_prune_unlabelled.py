"""Structured pruning that fine-tunes on the original's outputs takes a dataset without labels at submit (plain
sentences for a sentence-embedding model); fine-tuning on labels still refuses one, saying why."""
import pytest

from tests.factories import ready_model
from webapp.models import Dataset, Experiment

pytestmark = pytest.mark.django_db


def _bert(owner):
    model = ready_model(owner, name="minilm")
    model.format, model.input_shape, model.input_dtype = "hf", [1, 16], "int64"
    model.info = {**model.info, "format": "hf", "hf": {"family": "bert", "tokenizer": ["tokenizer.json"]}}
    model.info["recipes"]["prune"] = {"applicable": True, "reason": "", "variants": {
        "structured": {"applicable": True, "reason": "attention heads and feed-forward neurons can be removed"}}}
    model.save()
    return model


def test_sentences_without_labels_fine_tune_a_pruned_encoder_on_its_original_outputs_only(alice, alice_api):
    model = _bert(alice)
    info = {"samples": 100, "has_labels": False, "sample_shape": None, "dtype": "text"}
    sentences = Dataset.objects.create(owner=alice, name="sentences", kind="text", status="ready", info=info)
    config = {"method": "structured", "target_macs_ratio": 1.0, "target_params_ratio": 0.7}
    on_labels = alice_api.post("/api/experiments/", {"model": model.pk, "recipe": "prune", "dataset": sentences.pk,
                                                     "config": config}, format="json")
    assert on_labels.status_code == 400 and "no labels" in " ".join(on_labels.json()["dataset"])
    matched = alice_api.post("/api/experiments/", {
        "model": model.pk, "recipe": "prune", "dataset": sentences.pk,
        "config": {**config, "fine_tune_on": "original_outputs"}}, format="json")
    assert matched.status_code == 201, matched.json()
    assert Experiment.objects.get().config["fine_tune_on"] == "original_outputs"
    without_dataset = alice_api.post("/api/experiments/", {
        "model": model.pk, "recipe": "prune", "config": {**config, "fine_tune_on": "original_outputs"}}, format="json")
    assert without_dataset.status_code == 400 and "labels are not needed" in " ".join(without_dataset.json()["dataset"])

"""Names, notes and tags on experiments and models: checked, saved, shown, searchable in the list; only the owner's."""
import pytest
from django.core.exceptions import ValidationError

from tests.factories import experiment_with_artifact, ready_model
from webapp.models import Experiment, UploadedModel
from webapp.services.labels import experiment_label, model_label, parse_tags

pytestmark = pytest.mark.django_db


def test_tags_are_words_lowercased_once_each():
    assert parse_tags("Baseline, int8  try-2,int8") == ["baseline", "int8", "try-2"]
    assert parse_tags(["a.b", "C_d"]) == ["a.b", "c_d"]
    for bad in ("no/slash", "-leading", "x" * 41):
        with pytest.raises(ValidationError, match="is not a tag"):
            parse_tags(bad)
    with pytest.raises(ValidationError, match="At most 20 tags"):
        parse_tags([f"t{i}" for i in range(21)])
    with pytest.raises(ValidationError, match="as a list of words"):
        parse_tags(3)


def test_names_and_notes_are_checked(alice):
    experiment, _ = experiment_with_artifact(alice)
    with pytest.raises(ValidationError, match="line breaks are not allowed"):
        experiment_label(user=alice, experiment_id=experiment.pk, changes={"name": "two\nlines"})
    with pytest.raises(ValidationError, match="At most 10,000 characters"):
        experiment_label(user=alice, experiment_id=experiment.pk, changes={"notes": "x" * 10_001})
    with pytest.raises(ValidationError, match="Give a name"):
        model_label(user=alice, model_id=experiment.model_id, changes={"name": "  "})
    with pytest.raises(ValidationError, match="Only name, notes and tags"):
        experiment_label(user=alice, experiment_id=experiment.pk, changes={"status": "succeeded"})
    labelled = experiment_label(user=alice, experiment_id=experiment.pk,
                                changes={"name": " int8 try ", "notes": "line one\nline two", "tags": "Int8, Baseline"})
    assert (labelled.name, labelled.notes, labelled.tags) == ("int8 try", "line one\nline two", ["int8", "baseline"])


def test_the_api_patches_and_other_users_get_404(alice, alice_api, bob_api):
    experiment, _ = experiment_with_artifact(alice)
    assert bob_api.patch(f"/api/experiments/{experiment.pk}/", {"name": "mine"}, format="json").status_code == 404
    assert bob_api.patch(f"/api/models/{experiment.model_id}/", {"name": "mine"}, format="json").status_code == 404
    response = alice_api.patch(f"/api/experiments/{experiment.pk}/", {"tags": ["fast"], "notes": "try"},
                               format="json")
    assert response.status_code == 200 and response.json()["tags"] == ["fast"] and response.json()["notes"] == "try"
    bad = alice_api.patch(f"/api/experiments/{experiment.pk}/", {"tags": ["no/slash"], "user": 2}, format="json")
    assert bad.status_code == 400 and set(bad.json()) == {"user"}  # unknown fields first, named
    assert alice_api.patch(f"/api/experiments/{experiment.pk}/", [1], format="json").status_code == 400
    renamed = alice_api.patch(f"/api/models/{experiment.model_id}/", {"name": "resnet-int8"}, format="json")
    assert renamed.status_code == 200 and UploadedModel.objects.get().name == "resnet-int8"
    assert Experiment.objects.get().status == "succeeded"  # nothing but the labels changed


def test_the_list_searches_names_notes_and_tags(alice, alice_api, client):
    tagged, _ = experiment_with_artifact(alice)
    other, _ = experiment_with_artifact(alice)
    experiment_label(user=alice, experiment_id=tagged.pk, changes={"name": "Night run", "tags": ["baseline"],
                                                                   "notes": "calibrated on 512 digits"})
    model_label(user=alice, model_id=other.model_id, changes={"tags": ["resnet"]})
    for query, expected in (("baseline", [tagged.pk]), ("night", [tagged.pk]), ("512 digits", [tagged.pk]),
                            ("resnet", [other.pk]), ("base", [])):  # a tag matches whole, names and notes in part
        found = alice_api.get("/api/experiments/", {"q": query}).json()["results"]
        assert [e["id"] for e in found] == expected, query
    client.force_login(alice)
    page = client.get("/experiments/", {"q": "baseline"}).content.decode()
    assert f"#{tagged.pk} Night run" in page and '<span class="tag">baseline</span>' in page


def test_the_pages_forms(alice, client):
    client.force_login(alice)
    experiment, _ = experiment_with_artifact(alice)
    page = client.get(f"/experiments/{experiment.pk}/").content.decode()
    assert f'action="/experiments/{experiment.pk}/labels/"' in page
    response = client.post(f"/experiments/{experiment.pk}/labels/",
                           {"name": "first try", "tags": "int8", "notes": "a <b>bold</b> claim"}, follow=True)
    text = response.content.decode()
    assert "Saved the name, notes and tags." in text and '<span id="exp-name">first try</span>' in text
    assert "a &lt;b&gt;bold&lt;/b&gt; claim" in text  # escaped, never markup
    refused = client.post(f"/models/{experiment.model_id}/labels/", {"name": "", "tags": "", "notes": ""},
                          follow=True).content.decode()
    assert '<p class="field-error" id="labels-name_error">Give a name.</p>' in refused
    assert 'aria-describedby="labels-name_error"' in refused and UploadedModel.objects.get().name == "mlp"
    model = ready_model(alice, name="other")
    assert client.post(f"/models/{model.pk}/labels/", {"name": "x"}).status_code == 302

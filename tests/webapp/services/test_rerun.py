"""Run again with edits: the form filled with the source's model, dataset and settings; the new experiment links to
the one it came from, and its page lists what changed. The API's rerun lays edits over the source's settings."""
import pytest

from tests.factories import ready_model
from webapp import selectors, services
from webapp.models import Dataset, Experiment
from webapp.pages.forms import recipe_config_form

pytestmark = pytest.mark.django_db

PRUNE = {"method": "unstructured", "target_sparsity": 0.5, "epochs": 3}


def _digits(owner, name="digits"):
    return Dataset.objects.create(owner=owner, name=name, kind="digits", status="ready",
                                  info={"samples": 1797, "sample_shape": [64], "has_labels": True, "num_classes": 10})


def _source(owner) -> Experiment:
    model = ready_model(owner)
    model.info["recipes"]["prune"] = {"applicable": True, "reason": ""}
    model.save()
    return services.experiment_create(owner=owner, model=model, recipe="prune", config=PRUNE,
                                      dataset=_digits(owner), telemetry_interval_s=0.5)


def _as_posted(config: dict) -> dict:
    """What the browser sends for the filled prune form: every field, as the page renders it."""
    form = recipe_config_form("prune", initial=config)
    values = {f"prune-{name}": form[name].value() for name in form.fields}
    return {key: value for key, value in values.items() if value is not None and value is not False}


def test_the_api_lays_edits_over_the_sources_settings(alice, alice_api):
    source = _source(alice)
    response = alice_api.post(f"/api/experiments/{source.pk}/rerun/", {"config": {"target_sparsity": 0.7}},
                              format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["rerun_of"] == source.pk and body["dataset"] == source.dataset_id
    assert body["config"]["target_sparsity"] == 0.7 and body["config"]["epochs"] == 3
    assert body["telemetry_interval_s"] == 0.5
    rerun = Experiment.objects.get(pk=body["id"])
    assert selectors.rerun_changes(rerun) == [{"setting": "target_sparsity", "before": 0.5, "after": 0.7}]


def test_the_api_refuses_bad_edits_and_other_users(alice, alice_api, bob_api):
    source = _source(alice)
    assert bob_api.post(f"/api/experiments/{source.pk}/rerun/", {}, format="json").status_code == 404
    bad = alice_api.post(f"/api/experiments/{source.pk}/rerun/", {"config": {"target_sparsity": 2}}, format="json")
    assert bad.status_code == 400 and "config.target_sparsity" in bad.json()
    not_dict = alice_api.post(f"/api/experiments/{source.pk}/rerun/", {"config": [1]}, format="json")
    assert not_dict.status_code == 400 and "config" in not_dict.json()
    elsewhere = bob_api.post("/api/experiments/", {"model": 1, "recipe": "quantize", "rerun_of": source.pk},
                             format="json")
    assert elsewhere.status_code == 404
    assert Experiment.objects.count() == 1


def test_run_again_fills_the_form_and_the_new_page_lists_the_changes(alice, client):
    client.force_login(alice)
    source = _source(alice)
    other = _digits(alice, name="other-digits")
    page = client.get(f"/experiments/{source.pk}/rerun/").content.decode()
    assert f'name="rerun_of" value="{source.pk}"' in page
    assert '<option value="prune" selected>' in page.replace("  ", " ")
    assert 'name="prune-target_sparsity" value="0.5"' in page and 'name="prune-epochs" value="3"' in page
    assert f'<option value="{source.dataset_id}" selected>' in page
    assert 'value="0.5">' in page  # the telemetry interval
    posted = {"recipe": "prune", "rerun_of": source.pk, "dataset": other.pk, "telemetry_interval_s": "0.5",
              **_as_posted({**source.config, "target_sparsity": 0.6})}
    response = client.post(f"/models/{source.model_id}/experiments/", posted)
    assert response.status_code == 302, [form.errors for _, form in response.context["recipe_forms"]]
    rerun = Experiment.objects.exclude(pk=source.pk).get()
    assert rerun.rerun_of == source
    detail = client.get(response["Location"]).content.decode()
    assert f"A re-run of <a href=\"/experiments/{source.pk}/\">prune #{source.pk}</a>, with these settings changed" \
        in detail
    assert "<td>target_sparsity</td><td>0.5</td><td>0.6</td>" in detail
    assert "<td>dataset</td><td>digits</td><td>other-digits</td>" in detail


def test_a_refused_rerun_keeps_what_was_typed(alice, client):
    client.force_login(alice)
    source = _source(alice)
    posted = {"recipe": "prune", "rerun_of": source.pk, "dataset": source.dataset_id, "telemetry_interval_s": "0.7",
              **_as_posted({**source.config, "target_sparsity": 5})}
    refused = client.post(f"/models/{source.model_id}/experiments/", posted)
    assert refused.status_code == 302  # back to the model page's form, which a reload does not post again
    text = client.get(refused["Location"]).content.decode()
    assert f'name="rerun_of" value="{source.pk}"' in text and 'value="0.7"' in text
    assert f'<option value="{source.dataset_id}" selected>' in text
    assert Experiment.objects.count() == 1

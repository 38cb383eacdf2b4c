"""Refused forms in Chromium: what was typed stays, each error sits by its highlighted field, a reload posts
nothing, and the upload form refuses what it can before a byte is sent."""
import json

import pytest

from tests.browser import log_in, save_screenshot
from tests.factories import ready_model
from webapp.models import Chain, Dataset, Experiment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _ready_dataset(owner, name="digits-64", sample_shape=(64,)) -> Dataset:
    return Dataset.objects.create(owner=owner, name=name, kind=Dataset.Kind.DIGITS, status=Dataset.Status.READY,
                                  info={"samples": 1797, "sample_shape": list(sample_shape), "has_labels": True,
                                        "num_classes": 10})


def _model_refusing_fp16(owner):
    model = ready_model(owner, name="digits-mlp")
    model.info["recipes"]["quantize"]["variants"] = {"fp16": {"applicable": False,
                                                              "reason": "fp16 needs a GPU on this model"}}
    model.save(update_fields=["info"])
    return model


def _assert_marked(page, selector: str, text: str) -> None:
    """The input is highlighted and invalid, and points at its own error, which says `text`."""
    element = page.locator(selector)
    assert element.get_attribute("aria-invalid") == "true"
    assert "invalid" in (element.get_attribute("class") or "").split()
    error_id = element.get_attribute("aria-describedby").split()[-1]
    error = page.locator(f"#{error_id}")
    assert text in error.inner_text()
    assert error.evaluate("(e) => e.classList.contains('field-error')")
    # next to its input: the error comes right after the label that holds it
    assert element.evaluate("(e, id) => (e.closest('label') || e).nextElementSibling.id === id", error_id)


def _posts(page, seen: list) -> None:
    page.on("request", lambda request: seen.append(request.url) if request.method == "POST" else None)


def test_a_refused_experiment_keeps_every_value_and_a_reload_posts_nothing(carol, browser_page, web_server,
                                                                         tmp_path):
    model = _model_refusing_fp16(carol)
    dataset = _ready_dataset(carol)
    page = browser_page
    log_in(page, web_server)
    page.goto(f"{web_server}/models/{model.pk}/")
    form = page.locator("#experiment-form")
    form.locator("select[name=dataset]").select_option(str(dataset.pk))
    form.locator("select[name=quantize-variant]").select_option("fp16")
    form.locator("input[name=quantize-per_channel]").uncheck()
    form.locator("#telemetry-interval").fill("2.5")
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"{web_server}/models/{model.pk}/#experiment-form")
    save_screenshot(page, "experiment-refused.png", tmp_path)
    assert Experiment.objects.count() == 0
    assert form.locator("select[name=dataset]").input_value() == str(dataset.pk)
    assert form.locator("select[name=quantize-variant]").input_value() == "fp16"
    assert not form.locator("input[name=quantize-per_channel]").is_checked()
    assert form.locator("#telemetry-interval").input_value() == "2.5"
    _assert_marked(page, "#id_quantize-variant", "fp16 needs a GPU on this model")
    assert "config.variant" not in form.inner_text() and "variant:" not in form.inner_text()
    assert form.locator("[role=alert]").is_visible()
    assert form.locator("[aria-invalid=true]").count() == 1

    posted = []
    _posts(page, posted)
    page.reload()
    assert posted == [] and page.url == f"{web_server}/models/{model.pk}/#experiment-form"
    assert form.locator(".field-error").count() == 0  # shown once, then dropped
    form.locator("select[name=dataset]").select_option(str(dataset.pk))
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"{web_server}/experiments/*/")
    page.reload()
    assert Experiment.objects.count() == 1 and Experiment.objects.get().dataset_id == dataset.pk
    assert len(posted) == 1


def test_a_dataset_that_does_not_fit_is_marked_and_stays_chosen(carol, browser_page, web_server, tmp_path):
    model = ready_model(carol)
    unfit = _ready_dataset(carol, name="tiny-images", sample_shape=(3, 8, 8))
    page = browser_page
    log_in(page, web_server)
    page.goto(f"{web_server}/models/{model.pk}/")
    page.select_option("#experiment-dataset", str(unfit.pk))
    page.click("#experiment-form button[type=submit]")
    page.wait_for_url(f"{web_server}/models/{model.pk}/#experiment-form")
    assert page.locator("#experiment-dataset").input_value() == str(unfit.pk)
    _assert_marked(page, "#experiment-dataset", "The dataset does not fit the model")
    assert page.locator("#experiment-form [aria-invalid=true]").count() == 1
    save_screenshot(page, "experiment-refused-dataset.png", tmp_path)


def test_a_refused_chain_comes_back_with_its_steps_and_a_summary(carol, browser_page, web_server, tmp_path):
    model = ready_model(carol)
    dataset = _ready_dataset(carol)
    page = browser_page
    log_in(page, web_server)
    chain_page = f"{web_server}/models/{model.pk}/chain/"
    page.goto(chain_page)
    page.fill("#chain-name", "slim it")
    page.select_option("#step-0-dataset", str(dataset.pk))
    page.fill("#step-1-config", json.dumps({"student": "thinner_copy", "epochs": 0}))
    page.click("#chain-form button[type=submit]")
    page.wait_for_url(f"{chain_page}#chain-form")
    assert Chain.objects.count() == 0
    assert page.locator("#chain-name").input_value() == "slim it"
    assert page.locator("#step-0-dataset").input_value() == str(dataset.pk)
    assert '"epochs": 0' in page.locator("#step-1-config").input_value()
    _assert_marked(page, "#step-1-config", "Epochs: must be at least 1")
    save_screenshot(page, "chain-refused.png", tmp_path)

    for index in range(4):  # no step at all: an error of the whole chain, in the summary
        page.select_option(f"#step-{index}-recipe", "")
    page.click("#chain-form button[type=submit]")
    page.wait_for_url(f"{chain_page}#chain-form")
    alert = page.locator("#chain-form [role=alert]")
    assert alert.inner_text().startswith("Steps: Give the chain's steps as a list of 1 to")
    assert page.locator("#chain-form [aria-invalid=true]").count() == 0
    posted = []
    _posts(page, posted)
    page.reload()
    assert posted == [] and page.locator("#chain-form [role=alert]").count() == 0


def test_the_labels_form_opens_again_with_what_was_typed(carol, browser_page, web_server):
    model = ready_model(carol, name="keep-me")
    page = browser_page
    log_in(page, web_server)
    page.goto(f"{web_server}/models/{model.pk}/")
    page.click("details.labels summary")
    page.fill("#labels-tags", "fine, not a tag!")
    page.fill("#labels-notes", "typed notes stay")
    page.click("#labels-form button[type=submit]")
    page.wait_for_url(f"{web_server}/models/{model.pk}/#labels-form")
    assert page.locator("#labels-form").is_visible()  # the folded form is open again
    assert page.locator("#labels-tags").input_value() == "fine, not a tag!"
    assert page.locator("#labels-notes").input_value() == "typed notes stay"
    _assert_marked(page, "#labels-tags", "is not a tag")
    model.refresh_from_db()
    assert model.tags == [] and model.notes == ""


@pytest.mark.parametrize("file_name, shape, field, text", [
    ("mlp.pt", "1,x,64", "#upload-input-shape", "comma-separated positive integers"),
    ("mlp.pt", "1,1,1,1,1,1,1", "#upload-input-shape", "1 to 6 dimensions"),
    ("mlp.pt", "1,65537", "#upload-input-shape", "at most 65536"),
    ("mlp.pt", "64,1024,1024", "#upload-input-shape", "the limit is 50,000,000"),
    ("photo.png", "1,64", "#upload-file", "ending in .pt,"),
])
def test_the_upload_form_refuses_before_sending(carol, browser_page, web_server, tmp_path, file_name, shape, field,
                                                text):
    page = browser_page
    log_in(page, web_server)
    sent = []
    page.on("request", lambda request: sent.append(request.url) if "/api/models/" in request.url else None)
    path = tmp_path / file_name
    path.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    page.set_input_files("#upload-file", str(path))
    page.fill("#upload-name", "mlp")
    page.fill("#upload-input-shape", shape)
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#upload-form .field-error")
    _assert_marked(page, field, text)
    assert page.locator("#upload-form [aria-invalid=true]").count() == 1
    page.wait_for_timeout(300)  # a request the form sent anyway would have left by now
    assert sent == [] and page.url == f"{web_server}/models/"
    if field == "#upload-input-shape" and shape == "1,x,64":
        save_screenshot(page, "upload-refused.png", tmp_path)


def test_the_servers_refusal_of_an_upload_sits_by_its_field(carol, browser_page, web_server, tmp_path):
    page = browser_page
    log_in(page, web_server)
    path = tmp_path / "picture.pt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)  # a fitting name, but no model inside
    page.set_input_files("#upload-file", str(path))
    page.fill("#upload-name", "mlp")
    page.fill("#upload-input-shape", "1,64")
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#upload-form .field-error")
    _assert_marked(page, "#upload-file", "this looks like a PNG image")
    assert "file:" not in page.locator("#upload-form").inner_text()


def test_the_dataset_form_checks_the_kind_and_options_first(carol, browser_page, web_server, tmp_path):
    page = browser_page
    log_in(page, web_server)
    page.goto(f"{web_server}/datasets/")
    sent = []
    page.on("request", lambda request: sent.append(request.url) if "/api/datasets/" in request.url else None)
    path = tmp_path / "samples.csv"
    path.write_text("a,label\n1,0\n")
    page.fill("#dataset-name", "samples")
    page.select_option("#dataset-kind", "npz")
    page.set_input_files("#dataset-file", str(path))
    page.fill("#dataset-options", "[1, 2]")
    page.click("#dataset-form button[type=submit]")
    page.wait_for_selector("#dataset-form .field-error")
    _assert_marked(page, "#dataset-file", "ending in .npz")
    _assert_marked(page, "#dataset-options", "must be a JSON object")
    page.wait_for_timeout(300)
    assert sent == []
    save_screenshot(page, "dataset-refused.png", tmp_path)

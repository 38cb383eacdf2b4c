"""A new user's first run, from the logged-in home page to an optimized model on disk: at most 10 clicks."""
import zipfile

import pytest
import torch

from tests.browser import log_in, save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MAX_CLICKS = 10


def _check_model_file(path, name: str) -> None:
    """The download is the model it claims to be: it opens in its own format, and a digit goes through it."""
    digit = torch.rand(1, 1, 8, 8)
    if name.endswith(".pt"):
        assert zipfile.is_zipfile(path)
        output = torch.jit.load(str(path))(digit)
    elif name.endswith(".pt2"):
        output = torch.export.load(str(path)).module()(digit)
    elif name.endswith(".safetensors"):
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        assert tensors and all(t.numel() for t in tensors.values())
        return
    else:
        import onnx

        onnx.checker.check_model(onnx.load(str(path)))
        return
    assert tuple(output.shape) == (1, 10)


def test_the_first_optimized_download_takes_at_most_ten_clicks_from_home(browser_page, web_server, celery_worker,
                                                                        tmp_path):
    page = browser_page
    log_in(page, web_server)
    page.goto(f"{web_server}/")  # counting starts on the logged-in home page
    clicks = []

    def click(locator, what: str) -> None:
        clicks.append(what)
        locator.click()

    save_screenshot(page, "home-new-user.png", tmp_path)
    click(page.get_by_role("button", name="Make the sample model"), "make the sample model")
    page.wait_for_url(f"{web_server}/")
    click(page.get_by_role("button", name="Add the digits dataset"), "add the digits dataset")
    page.wait_for_url(f"{web_server}/")
    # The worker inspects the model and imports the digits; the page reloads itself as each is done.
    page.locator("#step-model .status.ready").wait_for(timeout=180_000)
    page.locator("#step-dataset .status.ready").wait_for(timeout=180_000)
    assert page.locator("#step-experiment").get_attribute("aria-current") == "step"
    save_screenshot(page, "home-ready.png", tmp_path)

    click(page.locator("#optimize-link"), "optimize the sample model")
    page.wait_for_url(f"{web_server}/models/*/")
    clicks.append("choose the digits dataset")
    page.locator("#experiment-form select[name=dataset]").select_option(label="scikit-learn digits (1797 samples)")
    click(page.get_by_role("button", name="Start"), "start (quantize, its defaults)")
    page.wait_for_url(f"{web_server}/experiments/*/")
    page.wait_for_function("() => document.getElementById('exp-status').textContent === 'succeeded'",
                           timeout=300_000)
    model_links = page.locator("#artifacts a.artifact", has_text="model.")
    model_links.first.wait_for(timeout=30_000)
    name = model_links.first.inner_text()
    save_screenshot(page, "first-run-succeeded.png", tmp_path)
    with page.expect_download() as download_info:
        click(model_links.first, f"download {name}")
    download = download_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)

    assert len(clicks) <= MAX_CLICKS, clicks
    assert download.suggested_filename.endswith(name.rsplit(".", 1)[1]) and saved.stat().st_size > 0
    _check_model_file(saved, name)
    page.goto(f"{web_server}/")
    assert page.locator("#step-download").get_attribute("aria-current") == "step"
    assert page.locator("#step-download .downloads a", has_text=name).count() == 1
    save_screenshot(page, "home-done.png", tmp_path)
    page.locator("#step-dataset a").click()  # not counted: the digits' previews, each with its class under it
    captions = page.locator(".previews figcaption").all_inner_texts()
    assert captions == [str(digit) for digit in range(len(captions))] and len(captions) >= 8
    page.wait_for_function("() => [...document.querySelectorAll('.previews img')]"
                           ".every((image) => image.complete && image.naturalWidth)")
    save_screenshot(page, "digits-previews.png", tmp_path)
    print(f"{len(clicks)} clicks: {clicks}")

"""A person's path in Debian's Chromium: log in, upload, quantize, watch the chart grow, download, check."""
import time

import pytest
import torch

from tests.browser import log_in, save_screenshot, upload_token_model
from tests.modelfiles import linear_model, linear_torchscript_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HIDDEN = 2048  # big enough that the job runs for a few seconds and the chart has time to move


def _points(page) -> int:
    return int(page.get_attribute("#chart", "data-points") or 0)


def test_upload_quantize_watch_and_download(web_server, celery_worker, browser_page, tmp_path):
    page = browser_page
    log_in(page, web_server)

    page.goto(f"{web_server}/datasets/")
    page.fill("#dataset-form input[name=name]", "digits")
    page.select_option("#dataset-kind", "digits")
    page.click("#dataset-form button[type=submit]")
    page.wait_for_url(f"{web_server}/datasets/*/")
    page.wait_for_selector("#record-status:text('ready')", timeout=90_000)
    assert page.text_content("#samples").strip() == "1797"
    page.wait_for_function("() => [...document.querySelectorAll('.previews img')].every(i => i.naturalWidth >= 64)")
    assert page.locator(".previews img").count() == 8

    page.goto(f"{web_server}/models/")
    model_path = tmp_path / "wide-mlp.pt"
    model_path.write_bytes(linear_torchscript_bytes(hidden=HIDDEN))
    page.set_input_files("input[name=file]", str(model_path))
    page.fill("input[name=name]", "wide-mlp")
    page.fill("input[name=input_shape]", "1,64")
    page.click("#upload-form button[type=submit]")
    page.wait_for_url(f"{web_server}/models/*/")
    page.wait_for_selector("#model-status:text('ready')", timeout=90_000)

    assert "applies" in page.text_content("#preflight")
    page.select_option("#experiment-form select[name=dataset]", label="digits (1797 samples)")
    page.click("#experiment-form button[type=submit]")
    page.wait_for_url(f"{web_server}/experiments/*/")
    seen_while_running = set()
    deadline = time.monotonic() + 180
    while page.text_content("#exp-status").strip() in ("queued", "running"):
        assert time.monotonic() < deadline, "the quantize job did not finish within 180 s"
        seen_while_running.add(_points(page))
        page.wait_for_timeout(100)
    assert len(seen_while_running - {0}) >= 2, f"the chart did not grow while running: {seen_while_running}"
    assert page.text_content("#exp-status").strip() == "succeeded", page.text_content("#exp-error")

    link = page.wait_for_selector("a.artifact:text('model.pt')", timeout=30_000)
    report = page.text_content("#report")
    assert "accuracy" in report and "MACs per sample" in report and "batch 32" in report
    assert len(page.text_content("#artifacts tbody tr:first-child code").strip()) == 64  # sha256 shown
    save_screenshot(page, "experiment.png", tmp_path)
    with page.expect_download() as download:
        link.click()
    downloaded = tmp_path / "quantized.pt"
    download.value.save_as(downloaded)

    assert downloaded.stat().st_size < 0.5 * model_path.stat().st_size
    quantized = torch.jit.load(str(downloaded))
    x = torch.randn(16, 64)
    with torch.inference_mode():
        expected = linear_model(hidden=HIDDEN)(x)
        assert torch.allclose(quantized(x), expected, atol=0.05 * expected.abs().max().item())


def test_a_state_dict_upload_with_a_chosen_architecture(web_server, celery_worker, browser_page, tmp_path):
    from optimizers.formats.statedict import save_safetensors
    from optimizers.zoo.models import build_model

    save_safetensors(build_model("small_cnn", {"channels": [8, 16]}), tmp_path / "cnn.safetensors")
    page = browser_page
    log_in(page, web_server)
    page.set_input_files("input[name=file]", str(tmp_path / "cnn.safetensors"))
    page.fill("input[name=name]", "tiny-cnn")
    page.select_option("#architecture", "small_cnn")
    assert page.is_visible("fieldset[data-architecture=small_cnn]")
    page.fill("input[name=arch-small_cnn-channels]", "8,16")
    page.click("#upload-form button[type=submit]")
    page.wait_for_url(f"{web_server}/models/*/")
    page.wait_for_selector("#model-status:text('ready')", timeout=90_000)
    facts = page.text_content("table.facts")
    assert "safetensors" in facts and "small_cnn" in facts and "[1, 1, 8, 8]" in facts


def test_a_hugging_face_folder_upload_shows_its_family(web_server, celery_worker, browser_page, tmp_path):
    transformers = pytest.importorskip("transformers")
    import zipfile

    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64)
    transformers.BertModel(config).save_pretrained(tmp_path / "bert")
    with zipfile.ZipFile(tmp_path / "bert.zip", "w") as archive:
        for file in (tmp_path / "bert").iterdir():
            archive.write(file, f"bert/{file.name}")
    page = browser_page
    log_in(page, web_server)
    upload_token_model(page, web_server, tmp_path / "bert.zip", "tiny-bert", "1,16")
    facts = page.text_content("table.facts")
    assert "Hugging Face folder" in facts and "bert · BertModel" in facts and "2 · 32 · 100 tokens" in facts
    assert "[1, 16] int64" in facts and "[1, 16, 32]" in facts
    save_screenshot(page, "model-hf-folder.png", tmp_path)

"""A transformers user's path in Chromium: a text dataset and a Hugging Face folder uploaded through the forms, a
distilled half-depth student started from the model page, its report (mean cosine to the original) and its
Hugging Face folder to download."""
import zipfile

import pytest

from tests.browser import log_in, save_screenshot, upload_token_model
from tests.hf_folders import bert_folder, word_lines, zip_folder

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_bert_folder_distils_on_text_from_the_forms(web_server, celery_worker, browser_page, tmp_path):
    pytest.importorskip("transformers")
    page = browser_page
    log_in(page, web_server)
    lines = word_lines()
    (tmp_path / "lines.txt").write_text("\n".join(lines) + "\n")
    page.goto(f"{web_server}/datasets/")
    page.fill("#dataset-name", "lines")
    page.select_option("#dataset-kind", "text")
    page.set_input_files("#dataset-file", str(tmp_path / "lines.txt"))
    page.fill("#dataset-options", '{"sequence_length": 16}')
    page.click("#dataset-form button[type=submit]")
    page.wait_for_url(f"{web_server}/datasets/*/")
    page.wait_for_selector("#record-status:text('ready')", timeout=90_000)
    assert "the model small a" in page.text_content("main")
    save_screenshot(page, "dataset-text.png", tmp_path)

    bert_folder(tmp_path / "bert")
    upload_token_model(page, web_server, zip_folder(tmp_path / "bert", tmp_path / "bert.zip"), "tiny-bert", "1,16")
    save_screenshot(page, "model-hf-recipes.png", tmp_path)

    page.select_option("#recipe", "distill")
    page.select_option("#experiment-form select[name=dataset]", label="lines (80 samples)")
    page.select_option("[name=distill-student]", "thinner_copy")
    page.select_option("[name=distill-loss]", "cosine")
    page.fill("[name=distill-epochs]", "2")
    page.fill("[name=distill-batch_size]", "16")
    page.uncheck("[name=distill-compare_without_teacher]")
    page.click("#experiment-form button[type=submit]")
    page.wait_for_url(f"{web_server}/experiments/*/")
    page.wait_for_selector("#exp-status:text('succeeded')", timeout=240_000)
    link = page.wait_for_selector("a.artifact:text('model.zip')", timeout=30_000)
    report = page.text_content("#report")
    assert "mean cosine to the original" in report and "parameters" in report
    save_screenshot(page, "experiment-distill-bert.png", tmp_path)
    with page.expect_download() as download:
        link.click()
    download.value.save_as(tmp_path / "student.zip")
    with zipfile.ZipFile(tmp_path / "student.zip") as archive:
        assert {"config.json", "model.safetensors", "vocab.txt"} <= set(archive.namelist())

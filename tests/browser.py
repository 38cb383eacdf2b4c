"""What every browser test shares: Debian's Chromium through Playwright, a user, logging in.

Fixtures are registered in conftest.py; `log_in` is a plain helper.
"""
import os
import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture
def carol(transactional_db):
    return get_user_model().objects.create_user("carol", password="carol-secret-pw")


@pytest.fixture
def browser_page(carol, monkeypatch):
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls stay synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1100})
        yield context.new_page()
        # ORM calls made while Playwright runs open a connection of their own (another context for Django's
        # connection handler); closed here, or it outlives the test and holds up the test database's teardown.
        connections.close_all()
        browser.close()


def log_in(page, web_server: str) -> None:
    page.goto(f"{web_server}/models/")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", "carol-secret-pw")
    page.click("button[type=submit]")
    page.wait_for_url(f"{web_server}/models/")


def upload_token_model(page, web_server: str, path: Path, name: str, input_shape: str) -> None:
    """Upload a model that takes token ids through the models page's form and wait for it to be ready."""
    page.goto(f"{web_server}/models/")
    page.set_input_files("input[name=file]", str(path))
    page.fill("input[name=name]", name)
    page.fill("#upload-input-shape", input_shape)
    page.select_option("#upload-input-dtype", "int64")
    page.click("#upload-form button[type=submit]")
    page.wait_for_url(f"{web_server}/models/*/")
    page.wait_for_selector("#model-status:text('ready')", timeout=90_000)


def save_screenshot(page, name: str, fallback_dir: Path) -> Path:
    """A full-page screenshot into $SLIMFORGE_SCREENSHOTS_DIR when set (`make screenshots`: the README's images),
    else into `fallback_dir` (the test's tmp_path)."""
    folder = Path(os.environ.get("SLIMFORGE_SCREENSHOTS_DIR") or fallback_dir)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=True)
    return folder / name

"""The API's documentation page in Chromium, under the site's content security policy: it draws every route; and
the API tokens page, reached from the top bar."""
import pytest

from tests.browser import log_in, save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_api_documentation_page_draws(carol, browser_page, web_server, tmp_path):
    errors = []
    browser_page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    log_in(browser_page, web_server)
    browser_page.goto(f"{web_server}/api/docs/")
    browser_page.wait_for_selector(".swagger-ui .info .title", timeout=20000)
    assert browser_page.locator(".swagger-ui .info .title").inner_text().startswith("Slimforge API")
    browser_page.wait_for_selector(".opblock", timeout=20000)
    assert browser_page.locator(".opblock").count() >= 25  # every method of every route
    assert not [text for text in errors if "Content Security Policy" in text], errors
    save_screenshot(browser_page, "api-docs.png", tmp_path)


def test_make_and_revoke_a_token_from_the_top_bar(carol, browser_page, web_server, tmp_path):
    log_in(browser_page, web_server)
    browser_page.click("text=API tokens")
    browser_page.click("#make-token")
    token = browser_page.locator("#new-token-value").inner_text()
    assert len(token) >= 40
    save_screenshot(browser_page, "api-tokens.png", tmp_path)
    browser_page.once("dialog", lambda dialog: dialog.accept())
    browser_page.get_by_role("button", name=f"revoke token {token[:8]}").click()
    browser_page.wait_for_selector("#messages")
    assert browser_page.locator("#no-tokens").is_visible()

"""Accessibility in Chromium: axe-core on every page finds nothing serious or critical, and the keyboard reaches
every control of a page with a visible focus ring."""
from pathlib import Path

import axe_playwright_python
import pytest
from django.core.files.base import ContentFile

from tests.browser import log_in, save_screenshot
from tests.factories import experiment_with_artifact
from webapp.models import Chain, ChainStep, Dataset

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE_SOURCE = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()
BLOCKING = {"serious", "critical"}
# A PNG of 1x1 grey: what the dataset page shows as a preview
TINY_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010800000000"
                         "3a7e9b550000000a49444154789c6360000000020001e221bc330000000049454e44ae426082")
RUN_AXE = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                                          nodes: v.nodes.map((n) => n.target.join(" ")) }));
}"""


@pytest.fixture
def carols_things(carol):
    # Made before Playwright starts its event loop in this thread (see test_browser_every_page.py).
    experiment, _ = experiment_with_artifact(carol)
    experiment.summary = {"before": {"size_bytes": 40_000, "params": 10_000}, "after": {"size_bytes": 12_000,
                          "params": 10_000}, "backend": "fbgemm", "notes": [], "extras": {}}
    experiment.progress = 1.0
    experiment.save()
    dataset = Dataset.objects.create(owner=carol, name="digits", kind="digits", status="ready",
                                     info={"samples": 1797, "sample_shape": [1, 8, 8], "dtype": "float32",
                                           "has_labels": True, "num_classes": 10, "classes": list("0123456789"),
                                           "preview_labels": {"preview_0.png": "0"}})
    dataset.files.create(name="preview_0.png", file=ContentFile(TINY_PNG, name="preview_0.png"))
    chain = Chain.objects.create(owner=carol, model=experiment.model, status=Chain.Status.FAILED,
                                 error="step 1 failed: the worker was lost")
    ChainStep.objects.create(chain=chain, index=0, recipe="quantize", config={})
    experiment.chain, experiment.chain_index = chain, 0
    experiment.save()
    return experiment, dataset, chain


def _pages(experiment, dataset, chain) -> list[str]:
    model = experiment.model_id
    return ["/", "/models/", f"/models/{model}/", "/datasets/", f"/datasets/{dataset.pk}/", "/experiments/",
            f"/experiments/{experiment.pk}/", f"/compare/?ids={experiment.pk}", "/chains/", f"/chains/{chain.pk}/",
            f"/models/{model}/chain/", "/workers/", "/account/tokens/", "/no-such-page/"]


def _violations(page) -> list[dict]:
    page.wait_for_load_state("networkidle")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SOURCE)  # evaluated through the browser's protocol: the page's CSP allows no inline script
    return [v for v in page.evaluate(RUN_AXE) if v["impact"] in BLOCKING]


def test_no_page_has_a_serious_or_critical_axe_violation(carols_things, browser_page, web_server, tmp_path):
    experiment, dataset, chain = carols_things
    page = browser_page
    found = {}
    page.goto(f"{web_server}/accounts/login/")
    found["/accounts/login/ (logged out)"] = _violations(page)
    log_in(page, web_server)
    for path in _pages(experiment, dataset, chain):
        response = page.goto(f"{web_server}{path}")
        assert response.status == (404 if path == "/no-such-page/" else 200), path
        found[path] = _violations(page)
    save_screenshot(page, "not-found.png", tmp_path)
    report = [f"{path}: {v['id']} ({v['impact']}) {v['help']} at {', '.join(v['nodes'][:8])}"
              for path, violations in found.items() for v in violations]
    print("\n".join(report))
    assert report == []


def test_the_keyboard_reaches_every_control_with_a_visible_focus_ring(carols_things, browser_page, web_server):
    experiment, _, _ = carols_things
    page = browser_page
    log_in(page, web_server)
    page.goto(f"{web_server}/models/{experiment.model_id}/")
    page.keyboard.press("Tab")
    first = page.evaluate("document.activeElement.textContent.trim()")
    assert first == "Skip to the content"  # the first Tab offers to jump over the navigation
    seen = set()
    for _ in range(60):
        focused = page.evaluate("""() => {
          const el = document.activeElement, style = getComputedStyle(el);
          return { tag: el.tagName, name: el.name || el.textContent.trim().slice(0, 40),
                   ring: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2 };
        }""")
        if focused["tag"] == "BODY":
            break
        assert focused["ring"], f"{focused} has no visible focus ring"
        seen.add((focused["tag"], focused["name"]))
        page.keyboard.press("Tab")
    names = {name for _, name in seen}
    assert {"Experiments", "Log out", "recipe", "dataset", "Start"} <= names, names

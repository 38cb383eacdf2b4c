"""Three real runs on one model, watched on the experiment list, ticked, compared: the Pareto chart in Chromium."""
import re

import pytest
import requests
import torch

from tests.browser import log_in, save_screenshot
from tests.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RUNS = [  # fast settings: the point is three different trade-offs, not the best model
    ("quantize", {"variant": "dynamic_int8"}),
    ("quantize", {"variant": "static_int8", "calibration_samples": 64}),
    ("prune", {"method": "structured", "target_macs_ratio": 0.5, "agp_steps": 1, "epochs_per_step": 0,
               "epochs": 2}),
]
FRONT_TRACE = "Pareto front"


def _trained_mlp(path) -> None:
    """The zoo's MLP trained a little on the digits, so accuracy means something on the chart."""
    from sklearn.datasets import load_digits

    from optimizers.formats.statedict import save_safetensors
    from optimizers.zoo.models import build_model

    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.images.reshape(-1, 64) / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    model = build_model("mlp", {})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    save_safetensors(model.eval(), path)


class Api:
    """The JSON API of the live server, as a script would use it (no ORM call while Playwright runs)."""

    def __init__(self, base: str, username: str, password: str):
        self.base, self.session = base, requests.Session()
        token = self.session.post(f"{base}/api/auth/token/", json={"username": username, "password": password})
        self.session.headers["Authorization"] = f"Token {token.json()['token']}"

    def get(self, path: str) -> dict:
        response = self.session.get(self.base + path, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.session.post(self.base + path, timeout=60, **kwargs)


def _settled(api, path, pending):
    body = api.get(path)
    return None if body["status"] in pending else body


def _start_three_runs(api, tmp_path) -> list[int]:
    _trained_mlp(tmp_path / "mlp.safetensors")
    created = api.post("/api/models/", files={"file": ("mlp.safetensors", (tmp_path / "mlp.safetensors").read_bytes())},
                       data={"name": "digits-mlp", "architecture": "mlp", "architecture_config": "{}"}).json()
    digits = api.post("/api/datasets/", json={"name": "digits", "kind": "digits"}).json()
    model = wait_until(lambda: _settled(api, f"/api/models/{created['id']}/", ("pending",)), timeout=120,
                       what="the inspection")
    assert model["status"] == "ready", model["error"]
    assert wait_until(lambda: _settled(api, f"/api/datasets/{digits['id']}/", ("pending",)), timeout=120,
                      what="the digits import")["status"] == "ready"
    ids = []
    for recipe, config in RUNS:
        response = api.post("/api/experiments/", json={"model": model["id"], "recipe": recipe, "config": config,
                                                       "dataset": digits["id"]})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def _traces(page) -> dict:
    return {t["name"]: t for t in page.evaluate(
        "[...document.getElementById('pareto').data].map(t => ({name: t.name, x: [...t.x], y: [...t.y],"
        " urls: [...(t.customdata || [])]}))")}


def _choose_axes(page, x, y) -> dict:
    page.select_option("#x-axis", x)
    page.select_option("#y-axis", y)
    page.wait_for_function(f"() => document.getElementById('pareto').dataset.axes === '{x}|{y}'")
    return _traces(page)


def test_choose_three_runs_on_the_list_and_compare_them(web_server, celery_worker, browser_page, carol, tmp_path):
    api = Api(web_server, "carol", "carol-secret-pw")
    ids = _start_three_runs(api, tmp_path)
    page = browser_page
    log_in(page, web_server)

    page.goto(f"{web_server}/experiments/")
    rows = "#experiment-table tbody tr"
    assert sorted(int(i) for i in page.eval_on_selector_all(rows, "rs => rs.map(r => r.dataset.id)")) == ids
    unfinished_at_first = page.eval_on_selector_all(rows, "rs => rs.filter(r => r.dataset.status !== 'succeeded')"
                                                          ".length")
    assert unfinished_at_first > 0, "the runs finished before the list could show them live"
    page.wait_for_function(f"() => [...document.querySelectorAll('{rows}')].every(r => "
                           "['succeeded', 'failed', 'cancelled'].includes(r.dataset.status))", timeout=240_000)
    for pk in ids:  # the badges changed in place, from the API, without a reload
        experiment = api.get(f"/api/experiments/{pk}/")
        assert experiment["status"] == "succeeded", experiment["error"]
        assert page.text_content(f"tr[data-id='{pk}'] [data-role=status]").strip() == "succeeded"
    page.wait_for_function("() => document.getElementById('experiment-table').dataset.polling === 'done'")

    assert page.is_disabled("#compare-button")
    for pk in ids:
        page.check(f"input[name=ids][value='{pk}']")
    page.click("#compare-button")
    page.wait_for_url(f"{web_server}/compare/?ids=*")
    assert sorted(int(i) for i in page.url.split("ids=")[1].split(",")) == ids

    comparison = api.get(f"/api/compare/?ids={','.join(map(str, ids))}")
    after = {e["id"]: e["values"] for e in comparison["experiments"]}
    url_ids = lambda trace: [int(u.rstrip("/").rsplit("/", 1)[1]) for u in trace["urls"]]  # noqa: E731

    page.wait_for_function("() => document.getElementById('pareto').dataset.axes === 'latency|accuracy'")
    traces = _traces(page)
    drawn = url_ids(traces[FRONT_TRACE]) + url_ids(traces["dominated"])
    assert sorted(drawn) == ids and len(traces[FRONT_TRACE]["x"]) >= 1
    assert set(url_ids(traces[FRONT_TRACE])) == set(comparison["fronts"]["accuracy|latency"])
    assert traces[FRONT_TRACE]["x"] == sorted(traces[FRONT_TRACE]["x"])  # joined left to right
    assert "original digits-mlp" in traces  # one model: its original is drawn as a reference
    table = page.text_content("#compare-table")
    assert "static_int8" in table and "structured" in table and "latency p50, batch 32 (ms)" in table
    assert page.locator("#compare-table a.artifact").count() >= 3
    save_screenshot(page, "compare.png", tmp_path)

    traces = _choose_axes(page, "size", "accuracy")
    front = url_ids(traces[FRONT_TRACE])
    assert set(front) == set(comparison["fronts"]["accuracy|size"])
    assert traces[FRONT_TRACE]["x"] == sorted(after[pk]["size"] for pk in front)

    if all(values["energy"] is None for values in after.values()):  # a CPU worker: no energy figures
        traces = _choose_axes(page, "size", "energy")
        assert traces[FRONT_TRACE]["x"] == [] and traces["dominated"]["x"] == []
        note = page.text_content("#left-out")
        assert all(f"#{pk}" in note for pk in ids) and "energy" in note and "CUDA" in note

    traces = _choose_axes(page, "latency", "accuracy")
    target = url_ids(traces[FRONT_TRACE])[0]
    point = page.locator("#pareto .scatterlayer .trace").first.locator("path.point").first.bounding_box()
    page.mouse.move(point["x"] + point["width"] / 2, point["y"] + point["height"] / 2)
    page.wait_for_selector("#pareto .hoverlayer .hovertext")
    # Runs with the same figures lie on one spot, and the hover names the one Plotly finds first: that one opens.
    hovered = int(re.search(r"#(\d+)", page.text_content("#pareto .hoverlayer .hovertext")).group(1))
    assert hovered in ids and (hovered == target or _same_spot(traces, hovered, target)), (hovered, target)
    page.mouse.click(point["x"] + point["width"] / 2, point["y"] + point["height"] / 2)
    page.wait_for_url(f"{web_server}/experiments/{hovered}/")


def _same_spot(traces: dict, first: int, second: int) -> bool:
    """Whether two runs are drawn at the same place on the chart (equal x and y in whichever traces hold them)."""
    where = {}
    for trace in traces.values():
        urls = trace.get("urls") or []
        for url, x, y in zip(urls, trace["x"], trace["y"], strict=False):
            where[int(url.rstrip("/").rsplit("/", 1)[1])] = (x, y)
    return where.get(first) is not None and where.get(first) == where.get(second)

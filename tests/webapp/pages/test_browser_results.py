"""In Chromium: the experiment list sorted by its result headers and its remembered columns, and the compare page
of four runs on two datasets at a laptop's width (nothing scrolls sideways, nothing overlaps, the warning, the
verdicts, the explained metrics, the chart's ranges from the data)."""
import pytest

from tests.browser import log_in, save_screenshot
from tests.factories import ready_model
from webapp.models import Dataset, Experiment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _report(*, accuracy, latency, size, sqnr=40.0):
    return {"size_bytes": size, "params": 2000, "nonzero_params": 2000, "macs": 4000,
            "latency_ms": {"batch_1": {"p50": latency, "p95": latency * 1.2},
                           "batch_32": {"p50": latency * 10, "p95": latency * 12}},
            "latency_ms_p50": latency, "throughput_per_s": 3200 / latency, "peak_memory_mb": 12.5,
            "accuracy": accuracy, "agreement_top1": 0.97, "output_error": {"max_abs": 0.01, "sqnr_db": sqnr},
            "energy_j_per_1000": None, "energy_note": "energy is measured on CUDA GPUs only (NVML)",
            "quality_note": None}


def _finished(owner, model, dataset, *, original, after, recipe="quantize", config=None) -> Experiment:
    summary = {"before": original, "after": after, "backend": "x86", "device": "cpu",
               "ratios": {"size": after["size_bytes"] / original["size_bytes"],
                          "latency_p50_batch_1": after["latency_ms_p50"] / original["latency_ms_p50"]}}
    return Experiment.objects.create(owner=owner, model=model, dataset=dataset, recipe=recipe, summary=summary,
                                     config=config or {"variant": "dynamic_int8"},
                                     status=Experiment.Status.SUCCEEDED, progress=1.0)


@pytest.fixture
def four_runs(carol):
    model = ready_model(carol, name="a-rather-long-model-name-for-a-resnet18-on-cifar10")
    digits = Dataset.objects.create(owner=carol, name="digits", kind="digits", status="ready")
    faces = Dataset.objects.create(owner=carol, name="olivetti-faces-64x64", kind="digits", status="ready")
    on_digits = _report(accuracy=0.96, latency=2.0, size=4_000_000)
    on_faces = _report(accuracy=0.80, latency=2.1, size=4_000_000)
    return [
        _finished(carol, model, digits, original=on_digits, after=_report(accuracy=0.955, latency=1.0, size=1_000_000)),
        _finished(carol, model, digits, original=on_digits, after=_report(accuracy=0.97, latency=2.4, size=2_000_000),
                  config={"variant": "static_int8", "calibration_samples": 64, "per_channel": False}),
        _finished(carol, model, faces, original=on_faces, after=_report(accuracy=0.78, latency=1.5, size=800_000),
                  recipe="prune", config={"method": "unstructured", "target_sparsity": 0.8, "epochs": 2}),
        _finished(carol, model, faces, original=on_faces, after=_report(accuracy=0.79, latency=1.2, size=2_500_000),
                  recipe="prune", config={"method": "structured", "target_macs_ratio": 0.5, "epochs": 3}),
    ]


def _boxes(page, selector) -> list[dict]:
    return page.eval_on_selector_all(selector, "els => els.map(e => { const r = e.getBoundingClientRect(); "
                                               "return {name: e.getAttribute('class') || e.tagName, x: r.x, y: r.y, "
                                               "w: r.width, h: r.height}; }).filter(b => b.w > 0 && b.h > 0)")


def _overlaps(boxes) -> list[tuple]:
    def meet(a, b):
        return a["x"] < b["x"] + b["w"] - 0.5 and b["x"] < a["x"] + a["w"] - 0.5 and \
            a["y"] < b["y"] + b["h"] - 0.5 and b["y"] < a["y"] + a["h"] - 0.5
    return [(a["name"], b["name"]) for i, a in enumerate(boxes) for b in boxes[i + 1:] if meet(a, b)]


def test_compare_four_runs_on_two_datasets_at_1280_px(carol, browser_page, web_server, four_runs, tmp_path):
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 1100})
    log_in(page, web_server)
    ids = [e.pk for e in four_runs]
    page.goto(f"{web_server}/compare/?ids={','.join(map(str, ids))}")
    page.wait_for_function("() => document.getElementById('pareto').dataset.axes === 'latency|accuracy'")

    # the table fits: neither it nor the page scrolls sideways
    widths = page.evaluate("() => { const s = document.querySelector('.table-scroll'); return {table: s.scrollWidth,"
                           " box: s.clientWidth, page: document.documentElement.scrollWidth, window: innerWidth}; }")
    assert widths["table"] <= widths["box"] and widths["page"] <= widths["window"], widths

    # nothing overlaps: the chart's axis titles, tick labels and legend, and the table's header cells
    chart = _boxes(page, "#pareto .g-xtitle, #pareto .g-ytitle, #pareto .legend, #pareto .xaxislayer-above, "
                         "#pareto .yaxislayer-above")
    assert len(chart) == 5 and _overlaps(chart) == [], chart
    headers = _boxes(page, "#compare-table thead th")
    assert len(headers) == 1 + 2 + 4 and _overlaps(headers) == [], headers  # two originals: one per dataset

    # different datasets: said above everything, and each run against its own dataset's original
    warning = page.locator("#dataset-warning")
    assert warning.is_visible() and "different datasets" in warning.inner_text()
    assert f"#{ids[0]} on digits" in warning.inner_text() and f"#{ids[2]} on olivetti-faces-64x64" in \
        warning.inner_text()
    dataset_row = page.locator("tr[data-row=dataset] td").all_inner_texts()
    assert dataset_row == ["digits", "olivetti-faces-64x64", "digits", "digits", "olivetti-faces-64x64",
                           "olivetti-faces-64x64"]
    accuracy = page.locator("tr[data-row=accuracy] td").all_inner_texts()
    # 95.5 % on digits is 0.5 points below the digits original; 78 % on faces 2 points below the faces one
    assert "-0.50 points against the original (worse)" in accuracy[2]
    assert "+1.00 points against the original (better)" in accuracy[3]
    assert "-2.00 points against the original (worse)" in accuracy[4]

    # better and worse in colour and in words
    latency = page.locator("tr[data-row='latency p50, batch 1 (ms)'] td small.verdict")
    assert latency.nth(0).inner_text() == "▼ 0.50× the original (better)"
    assert latency.nth(1).inner_text() == "▲ 1.20× the original (worse)"
    colours = latency.evaluate_all("els => els.map(e => getComputedStyle(e).color)")
    assert colours[0] == "rgb(4, 120, 87)" and colours[1] == "rgb(185, 28, 28)"

    # the settings side by side, the differing ones marked
    assert page.locator("tr.setting.differs[data-row=calibration_samples] td.differs").count() == 4
    assert page.locator("tr[data-row=variant] td").all_inner_texts()[2:] == ["dynamic_int8", "static_int8",
                                                                            "unstructured", "structured"]

    # the figures that surprise: a hover and a footnote
    for label in ("SQNR (dB)", "top-1 agreement with the original", "energy per 1,000 inferences (J)"):
        header = page.locator(f"#compare-table tbody th:has-text('{label}')")
        assert len(header.get_attribute("title")) > 40, label
        number = header.locator("sup a").inner_text()
        assert page.locator(f"#metric-note-{number}").is_visible()
    assert "decibels" in page.locator("#metric-notes").inner_text()

    # the chart's ranges are the data's: accuracy from 78 % to 97 %, padded, never 0–2
    ranges = page.evaluate("() => { const l = document.getElementById('pareto').layout; "
                           "return {x: l.xaxis.range, y: l.yaxis.range}; }")
    assert 0.7 < ranges["y"][0] < 0.78 and 0.97 < ranges["y"][1] <= 1.0, ranges
    assert 0.8 < ranges["x"][0] < 1.0 and 2.4 < ranges["x"][1] < 2.8, ranges
    save_screenshot(page, "compare-four-runs.png", tmp_path)


def test_one_run_alone_gets_a_range_around_its_point(carol, browser_page, web_server, four_runs):
    log_in(browser_page, web_server)
    browser_page.goto(f"{web_server}/compare/?ids={four_runs[0].pk}")
    browser_page.wait_for_function("() => document.getElementById('pareto').dataset.axes === 'latency|accuracy'")
    low, high = browser_page.evaluate("() => document.getElementById('pareto').layout.yaxis.range")
    assert 0.9 < low < 0.955 < high <= 1.0, (low, high)
    assert browser_page.locator("#dataset-warning").count() == 0  # one dataset: no warning


def test_sort_the_list_by_its_results_and_keep_the_chosen_columns(carol, browser_page, web_server, four_runs,
                                                                  tmp_path):
    page = browser_page
    Experiment.objects.create(owner=carol, model=four_runs[0].model, recipe="quantize",
                              config={"variant": "fp8_cuda"}, status=Experiment.Status.QUEUED)
    log_in(page, web_server)
    page.goto(f"{web_server}/experiments/")
    order = lambda: [int(i) for i in page.eval_on_selector_all(  # noqa: E731
        "#experiment-table tbody tr", "rs => rs.map(r => r.dataset.id)")]
    size_header = page.locator("th[data-column=size_ratio]")
    assert size_header.get_attribute("aria-sort") is None

    size_header.locator("a").click()
    page.wait_for_url("**/experiments/?order=size_ratio")
    by_size = sorted(four_runs, key=lambda e: e.summary["ratios"]["size"])
    assert order()[:4] == [e.pk for e in by_size] and len(order()) == 5  # the queued run last
    assert page.locator("th[data-column=size_ratio]").get_attribute("aria-sort") == "ascending"
    page.locator("th[data-column=size_ratio] a").click()
    page.wait_for_url("**/experiments/?order=-size_ratio")
    assert page.locator("th[data-column=size_ratio]").get_attribute("aria-sort") == "descending"
    assert order()[:4] == [e.pk for e in reversed(by_size)] and order()[4] not in {e.pk for e in four_runs}

    # a limit keeps the order; the variant has its own column
    page.fill("input[name=size_ratio_max]", "0.3")
    page.click("#filter-form button[type=submit]")
    page.wait_for_url("**size_ratio_max=0.3**")
    assert order() == [four_runs[0].pk, four_runs[2].pk] and "order=-size_ratio" in page.url
    assert page.locator(f"tr[data-id='{four_runs[2].pk}'] td[data-role=variant]").inner_text() == "unstructured"

    # hide two result columns: hidden again on the next visit
    page.goto(f"{web_server}/experiments/")
    page.click("#column-chooser summary")
    page.uncheck("#column-chooser input[data-column=energy]")
    page.uncheck("#column-chooser input[data-column=latency_ratio]")
    assert not page.locator("th[data-column=energy]").is_visible()
    page.goto(f"{web_server}/experiments/?order=-accuracy_delta")
    assert not page.locator("th[data-column=energy]").is_visible()
    assert not page.locator("td[data-column=latency_ratio]").first.is_visible()
    assert page.locator("th[data-column=accuracy_delta]").is_visible()
    assert page.locator("th[data-column=accuracy_delta]").get_attribute("aria-sort") == "descending"
    widths = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
    assert widths[0] <= widths[1], widths
    save_screenshot(page, "experiments-by-accuracy.png", tmp_path)
    page.click("#column-chooser summary")
    page.check("#column-chooser input[data-column=energy]")
    page.reload()
    assert page.locator("th[data-column=energy]").is_visible()
    assert not page.locator("th[data-column=latency_ratio]").is_visible()

"""/compare/ and GET /api/compare/: reports side by side, the Pareto fronts, owners only, garbage refused."""
import json
import re

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import ready_model
from webapp.models import Artifact, Dataset, Experiment
from webapp.selectors.comparison import AXES, dominates, front_key, pareto_front

pytestmark = pytest.mark.django_db


def _report(*, accuracy, latency, size, energy=None, macs=1000, params=500):
    return {"size_bytes": size, "params": params, "nonzero_params": params, "macs": macs,
            "latency_ms": {"batch_1": {"p50": latency, "p95": latency * 1.2},
                           "batch_32": {"p50": latency * 10, "p95": latency * 12}},
            "throughput_per_s": 32_000 / (latency * 10), "peak_memory_mb": 12.5, "accuracy": accuracy,
            "agreement_top1": 0.99 if accuracy is not None else None,
            "output_error": {"max_abs": 0.01, "sqnr_db": 40.0}, "energy_j_per_1000": energy,
            "energy_note": None if energy is not None else "energy is measured on CUDA GPUs only (NVML)",
            "quality_note": None}


ORIGINAL = _report(accuracy=0.96, latency=2.0, size=4000, macs=4000, params=2000)


def _finished(owner, model, dataset, after, *, recipe="quantize", config=None, telemetry_j=None) -> Experiment:
    summary = {"before": ORIGINAL, "after": after, "backend": "x86", "device": "cpu"}
    if telemetry_j is not None:
        summary["telemetry"] = {"energy_j": telemetry_j, "nvml": True}
    experiment = Experiment.objects.create(owner=owner, model=model, dataset=dataset, recipe=recipe,
                                           config=config or {"variant": "dynamic_int8"}, summary=summary,
                                           status=Experiment.Status.SUCCEEDED, progress=1.0)
    artifact = Artifact(experiment=experiment, name="model.pt", size_bytes=after["size_bytes"], sha256="2" * 64)
    artifact.file.save("model.pt", ContentFile(b"x" * after["size_bytes"]))
    return experiment


@pytest.fixture
def runs(alice):
    """Three runs on one model: `best_accuracy` and `fastest` form the accuracy/latency front, `beaten` does not."""
    model = ready_model(alice, name="digits-mlp")
    digits = Dataset.objects.create(owner=alice, name="digits", kind="digits", status="ready")
    return {
        "best_accuracy": _finished(alice, model, digits, _report(accuracy=0.95, latency=1.0, size=1000)),
        "fastest": _finished(alice, model, digits, _report(accuracy=0.90, latency=0.5, size=1000),
                             config={"variant": "static_int8", "calibration_samples": 64}, telemetry_j=123.4),
        "beaten": _finished(alice, model, digits, _report(accuracy=0.85, latency=0.8, size=500),
                            recipe="prune", config={"method": "structured"}),
    }


def _ids(runs, *names) -> str:
    return ",".join(str(runs[name].pk) for name in names)


def test_the_api_puts_reports_side_by_side_with_the_fronts(alice_api, runs):
    body = alice_api.get(f"/api/compare/?ids={_ids(runs, 'beaten', 'best_accuracy', 'fastest')}").json()
    pk = {name: e.pk for name, e in runs.items()}
    assert [e["id"] for e in body["experiments"]] == [pk["beaten"], pk["best_accuracy"], pk["fastest"]]
    assert {a["key"]: a["better"] for a in body["axes"]} == {"accuracy": "higher", "latency": "lower",
                                                              "size": "lower", "energy": "lower"}
    assert body["fronts"]["accuracy|latency"] == [pk["best_accuracy"], pk["fastest"]]
    assert body["fronts"]["latency|size"] == [pk["beaten"], pk["fastest"]]
    assert body["fronts"]["accuracy|size"] == [pk["beaten"], pk["best_accuracy"]]
    assert body["fronts"]["accuracy|energy"] == []  # nobody has an energy figure on a CPU
    fastest = body["experiments"][2]
    assert fastest["values"] == {"accuracy": 0.90, "latency": 0.5, "size": 1000, "energy": None}
    assert fastest["missing"] == {"energy": "energy is measured on CUDA GPUs only (NVML)"}
    assert fastest["variant"] == "static_int8" and fastest["settings"] == {"calibration_samples": 64}
    assert fastest["job_energy_j"] == 123.4 and fastest["report"]["throughput_per_s"] == 6400
    assert fastest["artifacts"][0]["url"].startswith(f"http://testserver/api/experiments/{pk['fastest']}/artifacts/")
    assert fastest["url"] == f"http://testserver/experiments/{pk['fastest']}/"
    [original] = body["references"]
    assert original["measured_in"] == pk["best_accuracy"] and original["values"]["size"] == 4000


def test_the_page_shows_the_table_and_embeds_the_same_data(alice, client, alice_api, runs):
    client.force_login(alice)
    query = f"ids={_ids(runs, 'best_accuracy', 'fastest', 'beaten')}"
    response = client.get(f"/compare/?{query}")
    assert response.status_code == 200
    page = response.content.decode()
    for text in ("original digits-mlp", "static_int8", "structured", "0.50× the original",
                 "latency p50, batch 32 (ms)", "energy of the job (J)", "123.4", "95.00 %", "js/compare.js",
                 f'href="/api/experiments/{runs["fastest"].pk}/artifacts/'):
        assert text in page, text
    embedded = json.loads(re.search(r'id="compare-data"[^>]*>(.*?)</script>', page, re.S).group(1))
    from_api = alice_api.get(f"/api/compare/?{query}").json()
    assert embedded["fronts"] == from_api["fronts"] and len(embedded["experiments"]) == 3
    best_latency = re.search(r"<th>latency p50, batch 1 \(ms\)</th>(.*?)</tr>", page, re.S).group(1)
    assert re.search(r'class=" best">0\.500', best_latency), best_latency  # the fastest run is bold
    # the settings side by side, one row each, marked where the runs differ
    setting = re.search(r'<tr class="setting differs" data-row="calibration_samples">(.*?)</tr>', page, re.S).group(1)
    assert re.findall(r"<td[^>]*>([^<]*)</td>", setting) == ["—", "—", "64", "—"]


def test_ids_may_repeat_or_come_as_a_plain_form_sends_them(alice_api, runs):
    a, b = runs["fastest"].pk, runs["beaten"].pk
    body = alice_api.get(f"/api/compare/?ids={a}&ids={b},{a}").json()
    assert [e["id"] for e in body["experiments"]] == [a, b]


def test_an_unfinished_run_is_listed_but_left_out_of_the_chart_with_the_reason(alice, alice_api, runs):
    running = Experiment.objects.create(owner=alice, model=runs["fastest"].model, recipe="quantize",
                                        config={"variant": "fp16"}, status=Experiment.Status.RUNNING)
    no_dataset = _finished(alice, runs["fastest"].model, None, _report(accuracy=None, latency=0.4, size=900))
    body = alice_api.get(f"/api/compare/?ids={running.pk},{no_dataset.pk},{runs['fastest'].pk}").json()
    entries = {e["id"]: e for e in body["experiments"]}
    assert entries[running.pk]["missing"]["size"] == "it has no report yet: it is running"
    assert entries[no_dataset.pk]["missing"] == {
        "accuracy": "it ran without a dataset, so accuracy was not measured",
        "energy": "energy is measured on CUDA GPUs only (NVML)"}
    assert body["fronts"]["accuracy|latency"] == [runs["fastest"].pk]
    assert body["fronts"]["latency|size"] == [no_dataset.pk]


def test_bob_gets_a_404_if_any_id_is_not_his(alice, bob, bob_api, client, runs):
    his = _finished(bob, ready_model(bob), None, _report(accuracy=None, latency=1.0, size=100))
    client.force_login(bob)
    assert bob_api.get(f"/api/compare/?ids={his.pk}").status_code == 200
    for ids in (_ids(runs, "fastest"), f"{his.pk},{runs['fastest'].pk}"):
        assert bob_api.get(f"/api/compare/?ids={ids}").status_code == 404
        assert client.get(f"/compare/?ids={ids}").status_code == 404
    missing = Experiment.objects.order_by("-pk").first().pk + 1000  # unknown ids look exactly like others' ids
    assert bob_api.get(f"/api/compare/?ids={his.pk},{missing}").status_code == 404


@pytest.mark.parametrize("ids", ["", "abc", "1,,x", "1;2", "0", "-3", "99999999999999999999999",
                                 ",".join(str(n) for n in range(1, 52))])
def test_garbage_ids_are_a_400_that_says_what_to_give(alice, alice_api, client, ids):
    response = alice_api.get(f"/api/compare/?ids={ids}")
    assert response.status_code == 400 and list(response.json()) == ["ids"], response.content
    client.force_login(alice)
    page = client.get(f"/compare/?ids={ids}")
    assert page.status_code == 400 and "ids: " in page.content.decode()


def test_login_is_needed(client):
    assert client.get("/compare/?ids=1").status_code == 302
    assert client.get("/api/compare/?ids=1").status_code in (401, 403)


def test_the_queries_do_not_grow_with_the_experiments(alice, alice_api, runs):
    def queries(ids):
        with CaptureQueriesContext(connection) as captured:
            assert alice_api.get(f"/api/compare/?ids={ids}").status_code == 200
        return len(captured)

    one = queries(_ids(runs, "fastest"))
    model, dataset = runs["fastest"].model, runs["fastest"].dataset
    more = [_finished(alice, model, dataset, _report(accuracy=0.9, latency=1, size=10)) for _ in range(12)]
    assert queries(",".join(str(e.pk) for e in more)) == one


def test_dominance_ties_and_directions():
    senses = ("higher", "lower")  # accuracy up, latency down
    assert dominates((0.9, 1.0), (0.8, 1.0), senses) and dominates((0.9, 1.0), (0.9, 2.0), senses)
    assert not dominates((0.9, 1.0), (0.9, 1.0), senses)  # equal points do not beat each other
    assert not dominates((0.9, 2.0), (0.8, 1.0), senses)  # better on one axis, worse on the other

    def entry(pk, accuracy, latency):
        return {"id": pk, "values": {"accuracy": accuracy, "latency": latency, "size": None, "energy": None}}

    entries = [entry(1, 0.9, 1.0), entry(2, 0.9, 1.0), entry(3, 0.95, 3.0), entry(4, 0.8, 2.0), entry(5, None, 0.1)]
    assert pareto_front(entries, "accuracy", "latency") == [1, 2, 3]
    assert pareto_front(entries, "latency", "accuracy") == [1, 2, 3]
    assert front_key("latency", "accuracy") == front_key("accuracy", "latency") == "accuracy|latency"
    assert pareto_front(entries, "size", "latency") == [] and set(AXES) == {"accuracy", "latency", "size", "energy"}


def test_runs_on_different_datasets_are_flagged_and_each_has_its_own_original(alice, alice_api, client, runs):
    faces = Dataset.objects.create(owner=alice, name="faces", kind="digits", status="ready")
    on_faces = _finished(alice, runs["fastest"].model, faces, _report(accuracy=0.7, latency=0.9, size=800))
    on_faces.summary["before"] = _report(accuracy=0.75, latency=2.0, size=4000)
    on_faces.save(update_fields=["summary"])
    same = alice_api.get(f"/api/compare/?ids={_ids(runs, 'fastest', 'beaten')}").json()
    assert same["datasets_differ"] is False and len(same["references"]) == 1
    body = alice_api.get(f"/api/compare/?ids={_ids(runs, 'fastest')},{on_faces.pk}").json()
    assert body["datasets_differ"] is True
    assert [(r["dataset_name"], r["values"]["accuracy"]) for r in body["references"]] == [("digits", 0.96),
                                                                                          ("faces", 0.75)]
    assert [e["dataset_name"] for e in body["experiments"]] == ["digits", "faces"]
    client.force_login(alice)
    page = client.get(f"/compare/?ids={_ids(runs, 'fastest')},{on_faces.pk}").content.decode()
    assert 'id="dataset-warning"' in page and "measured\n    on different datasets" in page
    # 70 % on faces against the faces original's 75 %, not the digits one's 96 %
    assert "-5.00 points against the original" in page and "-6.00 points against the original" in page
    assert 'id="dataset-warning"' not in client.get(f"/compare/?ids={_ids(runs, 'fastest')}").content.decode()


def test_language_model_rows_show_only_where_a_run_measured_them(alice, client, runs):
    client.force_login(alice)
    page = client.get(f"/compare/?ids={_ids(runs, 'best_accuracy', 'fastest')}").content.decode()
    assert "perplexity" not in page and "tokens per second" not in page  # no row of dashes for image models
    model, dataset = runs["fastest"].model, runs["fastest"].dataset
    language = _finished(alice, model, dataset, {**_report(accuracy=None, latency=1.0, size=900), "perplexity": 17.7,
                                                 "generation": {"tokens_per_s": {"batch_1": 5.4}}})
    page = client.get(f"/compare/?ids={runs['fastest'].pk},{language.pk}").content.decode()
    row = re.search(r">perplexity \(validation text\)(.*?)</tr>", page, re.S).group(1)
    assert "17.700" in row and "tokens per second, batch 1" in page

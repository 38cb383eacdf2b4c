"""The event contract: one typed definition of each kind, made by constructors every producer shares."""
import json
import math

import pytest

from optimizers import events
from optimizers.reporters import JsonLinesReporter, ListReporter


def test_every_kind_has_a_constant_and_the_contract_lists_them_all():
    assert events.KINDS == ("progress", "metric", "resource", "log", "stage", "status")
    contract = events.contract()
    assert set(contract["kinds"].values()) == set(events.KINDS)
    assert set(contract["statuses"].values()) == set(events.STATUSES)
    assert contract["finished"] == ["succeeded", "failed", "cancelled"]
    json.dumps(contract)  # the page embeds it as JSON


def test_constructors_make_the_documented_records():
    assert events.progress_event(3.0, 10, "fine-tune") == {"kind": "progress", "done": 3, "total": 10,
                                                           "stage": "fine-tune"}
    assert events.metric_event("train/loss", 140, 0.231) == {"kind": "metric", "name": "train/loss", "step": 140,
                                                              "value": 0.231}
    assert events.resource_event("gpu0/power_w", 412.54, digits=1) == {"kind": "resource", "name": "gpu0/power_w",
                                                                       "value": 412.5}
    assert events.stage_event("save") == {"kind": "stage", "name": "save"}
    assert events.log_event(7) == {"kind": "log", "message": "7"}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_value_json_cannot_hold_becomes_a_gap(value):
    event = events.metric_event("train/loss", 1, value)
    assert event["value"] is None
    json.dumps(event, allow_nan=False)


def test_status_events_carry_the_error_once_finished_and_refuse_unknown_statuses():
    assert events.status_event(events.RUNNING) == {"kind": "status", "status": "running"}
    assert events.status_event(events.RUNNING, note="resumed") == {"kind": "status", "status": "running",
                                                                    "note": "resumed"}
    assert events.status_event(events.SUCCEEDED) == {"kind": "status", "status": "succeeded", "error": ""}
    assert events.status_event(events.FAILED, "boom")["error"] == "boom"
    with pytest.raises(ValueError, match="unknown experiment status 'done'"):
        events.status_event("done")


@pytest.mark.parametrize(("event", "stage"), [
    (events.stage_event("prune step 1/4"), "prune step 1/4"),
    (events.progress_event(1, 4, "calibrate"), "calibrate"),
    (events.metric_event("train/loss", 1, 0.5), None),
    (events.progress_event(1, 4, ""), None),
])
def test_stage_of_reads_stage_and_progress_events(event, stage):
    assert events.stage_of(event) == stage


def test_both_reporters_write_the_same_records(tmp_path):
    listed = ListReporter()
    path = tmp_path / "events.jsonl"
    with open(path, "w") as stream:
        written = JsonLinesReporter(stream)
        for reporter in (listed, written):
            reporter.stage("calibrate")
            reporter.progress(1, 2, "calibrate")
            reporter.metric("train/loss", 1, 0.5)
            reporter.log("hello")
    assert [json.loads(line) for line in path.read_text().splitlines()] == listed.events
    assert [event["kind"] for event in listed.events] == [events.STAGE, events.PROGRESS, events.METRIC, events.LOG]

"""The compare page's table, made from `comparison_of`'s result: one column per original and per experiment.

Cells are plain dicts ({"text", "note", "best", "links"}) so the template only lays them out.
"""
from django.template.defaultfilters import filesizeformat

from webapp.selectors.comparison import report_value


def _count(value) -> str:
    return f"{value:,}"


def _ms(value) -> str:
    return f"{value:.3f}"


def _rate(value) -> str:
    return f"{value:,.0f}"


def _percent(value) -> str:
    return f"{100 * value:.2f} %"


def _joules(value) -> str:
    return f"{value:.3f}"


# label, path into a report, format, which way is better, whether a ratio to the original means something
ROWS = [
    ("file size", ("size_bytes",), filesizeformat, "lower", True),
    ("parameters", ("params",), _count, "lower", True),
    ("non-zero parameters", ("nonzero_params",), _count, "lower", True),
    ("MACs per sample", ("macs",), _count, "lower", True),
    ("latency p50, batch 1 (ms)", ("latency_ms", "batch_1", "p50"), _ms, "lower", True),
    ("latency p50, batch 32 (ms)", ("latency_ms", "batch_32", "p50"), _ms, "lower", True),
    ("throughput (samples/s)", ("throughput_per_s",), _rate, "higher", True),
    ("accuracy", ("accuracy",), _percent, "higher", False),
    ("top-1 agreement with the original", ("agreement_top1",), _percent, "higher", False),
    ("energy per 1,000 inferences (J)", ("energy_j_per_1000",), _joules, "lower", True),
]
EMPTY = {"text": "—"}


def comparison_table(comparison: dict) -> dict:
    references, experiments = comparison["references"], comparison["experiments"]
    rows = [_header_row(label, references, experiments, cell) for label, cell in _HEADER_ROWS]
    rows += [_metric_row(spec, references, experiments) for spec in ROWS]
    rows.append({"label": "energy of the job (J)",
                 "cells": [EMPTY] * len(references) + [_job_energy(e) for e in experiments]})
    rows.append({"label": "artifacts", "cells": [EMPTY] * len(references) + [_artifacts(e) for e in experiments]})
    return {"references": references, "experiments": experiments, "rows": rows}


def _header_row(label, references, experiments, cell) -> dict:
    return {"label": label, "cells": [EMPTY] * len(references) + [cell(e) for e in experiments]}


def _recipe(entry) -> dict:
    settings = ", ".join(f"{key}={value}" for key, value in entry["settings"].items())
    return {"text": " · ".join(part for part in (entry["recipe"], entry["variant"]) if part), "note": settings}


_HEADER_ROWS = [
    ("model", lambda e: {"text": e["model"]["name"]}),
    ("recipe and settings", _recipe),
    ("status", lambda e: {"text": e["status"], "status": e["status"]}),
    ("backend", lambda e: {"text": " · ".join(str(p) for p in (e["backend"], e["device"]) if p) or "—"}),
]


def _metric_row(spec, references, experiments) -> dict:
    label, path, shown, better, with_ratio = spec
    values = [report_value(e["report"], path) for e in experiments]
    known = [v for v in values if v is not None]
    best = (max(known) if better == "higher" else min(known)) if len(known) > 1 else None
    cells = [_cell(report_value(r["report"], path), shown) for r in references]
    for entry, value in zip(experiments, values, strict=True):
        cell = _cell(value, shown)
        # To the original as measured in the same run: same worker, same load, same dataset.
        reference = report_value(entry["before"], path)
        if with_ratio and value is not None and reference:
            cell["note"] = f"{value / reference:.2f}× the original"
        cell["best"] = value is not None and value == best
        cells.append(cell)
    return {"label": label, "cells": cells}


def _cell(value, shown) -> dict:
    return EMPTY.copy() if value is None else {"text": shown(value)}


def _job_energy(entry) -> dict:
    return _cell(entry["job_energy_j"], lambda joules: f"{joules:,.1f}")


def _artifacts(entry) -> dict:
    return {"links": entry["artifacts"]} if entry["artifacts"] else EMPTY

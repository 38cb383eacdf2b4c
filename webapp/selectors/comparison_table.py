"""The compare page's table, made from `comparison_of`'s result: one column per original (per model and dataset)
and per experiment.

Rows are {"label", "cells", "kind", "differs", "help", "footnote"}; cells are plain dicts ({"text", "note", "best",
"links", "status", "versus"}) so the template only lays them out. `versus` is a run's figure against the original
measured in the same run (same worker, same dataset): {"text", "verdict": "better" | "worse" | "level",
"symbol"}, so the page never says better or worse by colour alone.
"""
import json

from django.template.defaultfilters import filesizeformat

from optimizers.configs import RECIPE_CONFIGS
from webapp.selectors.comparison import report_value


def _count(value) -> str:
    return f"{value:,}"


def _ms(value) -> str:
    return f"{value:.3f}"


def _rate(value) -> str:
    return f"{value:,.0f}"


def _percent(value) -> str:
    return f"{100 * value:.2f} %"


def _cosine(value) -> str:
    return f"{value:.5f}"


def _perplexity(value) -> str:
    return f"{value:.3f}"


def _joules(value) -> str:
    return f"{value:.3f}"


def _db(value) -> str:
    return f"{value:.1f}"


# The figures whose meaning surprises: each row's hover and the footnote under the table.
HELP = {
    "sqnr": "Signal-to-quantization-noise ratio of the outputs against the original's on the same inputs, in "
            "decibels: higher is closer, every 10 dB is ten times less noise; about 20 dB is visibly different, 40 "
            "dB and above nearly identical. Identical outputs have no noise (∞).",
    "cosine": "Per input, the cosine similarity of the result's whole output to the original's on the same input "
              "(1 = the same direction), averaged: how an embedding model is judged.",
    "agreement": "The share of inputs whose top-1 class is the same as the original's, whatever the labels: "
                 "how faithfully the result copies the original, not how accurate it is.",
    "perplexity": "A language model's perplexity on its run's validation text: exp of the mean next-token "
                  "cross-entropy; lower is better, and runs on different texts do not compare.",
    "energy": "Whole-GPU energy (NVML counter) per 1,000 inferences while the model ran in a loop, idle draw "
              "included; measured on CUDA GPUs only, so CPU runs show —.",
    "job_energy": "GPU energy of the whole job (training, calibration and measuring included) from the workers' "
                  "telemetry, every host's for a job on several; not comparable between recipes that train and "
                  "recipes that do not.",
}

# label, path into a report, format, which way is better, how a run compares with its original
# ("ratio": after / before; "points": the difference in percentage points; None: it is already against it),
# and its HELP key
ROWS = [
    ("file size", ("size_bytes",), filesizeformat, "lower", "ratio", None),
    ("parameters", ("params",), _count, "lower", "ratio", None),
    ("non-zero parameters", ("nonzero_params",), _count, "lower", "ratio", None),
    ("MACs per sample", ("macs",), _count, "lower", "ratio", None),
    ("latency p50, batch 1 (ms)", ("latency_ms", "batch_1", "p50"), _ms, "lower", "ratio", None),
    ("latency p50, batch 32 (ms)", ("latency_ms", "batch_32", "p50"), _ms, "lower", "ratio", None),
    ("throughput (samples/s)", ("throughput_per_s",), _rate, "higher", "ratio", None),
    ("accuracy", ("accuracy",), _percent, "higher", "points", None),
    ("top-1 agreement with the original", ("agreement_top1",), _percent, "higher", None, "agreement"),
    ("SQNR (dB)", ("output_error", "sqnr_db"), _db, "higher", None, "sqnr"),
    ("mean cosine to the original", ("output_error", "mean_cosine"), _cosine, "higher", None, "cosine"),
    ("perplexity (validation text)", ("perplexity",), _perplexity, "lower", "ratio", "perplexity"),
    ("tokens per second, batch 1", ("generation", "tokens_per_s", "batch_1"), _rate, "higher", "ratio", None),
    ("energy per 1,000 inferences (J)", ("energy_j_per_1000",), _joules, "lower", "ratio", "energy"),
]
EMPTY = {"text": "—"}
_SQNR = ("output_error", "sqnr_db")
_SYMBOLS = {("better", "lower"): "▼", ("better", "higher"): "▲", ("worse", "lower"): "▲", ("worse", "higher"): "▼"}


def comparison_table(comparison: dict) -> dict:
    references, experiments = comparison["references"], comparison["experiments"]
    footnotes = []

    def footnote(key):
        if key is None:
            return None, None
        if key not in footnotes:
            footnotes.append(key)
        return HELP[key], footnotes.index(key) + 1

    rows = [_header_row(label, references, experiments, cell) for label, cell in _HEADER_ROWS]
    rows += _setting_rows(references, experiments)
    for spec in ROWS:
        if spec[1][0] in _LANGUAGE_MODEL_FIGURES and not _measured(spec[1], references, experiments):
            continue  # a language model's figures: no row of dashes when none of the runs is one
        rows.append(_metric_row(spec, references, experiments, *footnote(spec[5])))
    help_text, number = footnote("job_energy")
    rows.append({"label": "energy of the job (J)", "kind": "metric", "help": help_text, "footnote": number,
                 "cells": [EMPTY] * len(references) + [_job_energy(e) for e in experiments]})
    rows.append({"label": "artifacts", "kind": "files",
                 "cells": [EMPTY] * len(references) + [_artifacts(e) for e in experiments]})
    return {"references": references, "experiments": experiments, "rows": rows,
            "footnotes": [{"number": index + 1, "key": key, "text": HELP[key]} for index, key in enumerate(footnotes)],
            "datasets_differ": comparison.get("datasets_differ", False)}


def _header_row(label, references, experiments, cell) -> dict:
    # The originals' columns name their model and the dataset they were measured on; the rest is the runs'.
    originals = [cell(r) if label in ("model", "dataset") else EMPTY for r in references]
    cells = originals + [cell(e) for e in experiments]
    return {"label": label, "kind": "header", "cells": cells,
            "differs": label == "dataset" and len({e["dataset"] for e in experiments}) > 1}


def _dataset(entry) -> dict:
    return {"text": entry["dataset_name"] or "none (the example input)"}


_HEADER_ROWS = [
    ("model", lambda e: {"text": e["model"]["name"]}),
    ("dataset", _dataset),
    ("recipe", lambda e: {"text": e["recipe"]}),
    ("variant", lambda e: {"text": e["variant"] or "—"}),
    ("status", lambda e: {"text": e["status"], "status": e["status"]}),
    ("backend", lambda e: {"text": " · ".join(str(p) for p in (e["backend"], e["device"]) if p) or "—"}),
]


def _setting_rows(references, experiments) -> list[dict]:
    """One row per setting that some run chose (not its recipe's default) or that differs between the runs; the
    runs' values side by side, the rows where they differ marked."""
    shown = []
    for entry in experiments:
        config_type = RECIPE_CONFIGS.get(entry["recipe"])
        variant_field = config_type.variant_field if config_type else None
        for key in (entry.get("config") or {}):
            if key != variant_field and key not in shown:
                shown.append(key)
    rows = []
    for key in shown:
        values = [_setting_text(e.get("config") or {}, key) for e in experiments]
        differs = len(set(values)) > 1
        if not differs and not any(key in e["settings"] for e in experiments):
            continue  # the same default everywhere: nothing to look at
        cells = [EMPTY] * len(references) + [{"text": value, "differs": differs} for value in values]
        rows.append({"label": key, "kind": "setting", "differs": differs, "cells": cells})
    return rows


def _setting_text(config: dict, key: str) -> str:
    if key not in config:
        return "—"
    value = config[key]
    return value if isinstance(value, str) else json.dumps(value)


_LANGUAGE_MODEL_FIGURES = ("perplexity", "generation")


def _measured(path, references, experiments) -> bool:
    return any(report_value(entry["report"], path) is not None for entry in [*references, *experiments])


def _metric_row(spec, references, experiments, help_text, footnote) -> dict:
    label, path, shown, better, versus, _ = spec
    values = [report_value(e["report"], path) for e in experiments]
    known = [v for v in values if v is not None]
    # Bold marks a winner: none when every run has the same figure.
    best = (max(known) if better == "higher" else min(known)) if len(set(known)) > 1 else None
    cells = [_cell(report_value(r["report"], path), shown, path, r["report"]) for r in references]
    for entry, value in zip(experiments, values, strict=True):
        cell = _cell(value, shown, path, entry["report"])
        # To the original as measured in the same run: same worker, same load, same dataset.
        reference = report_value(entry["before"], path)
        if versus and value is not None and reference is not None:
            cell["versus"] = _versus(versus, value, reference, better)
        cell["best"] = value is not None and value == best
        cells.append(cell)
    return {"label": label, "kind": "metric", "cells": cells, "help": help_text, "footnote": footnote}


def _versus(kind: str, value, reference, better: str) -> dict | None:
    if kind == "ratio":
        if not reference:
            return None
        ratio = value / reference
        change, text = round(ratio, 2) - 1, f"{ratio:.2f}× the original"
    else:
        change = round(100 * (value - reference), 2)
        text = f"{change:+.2f} points against the original"
    if change == 0:
        return {"text": text, "verdict": "level", "symbol": "="}
    verdict = "better" if (change < 0) == (better == "lower") else "worse"
    return {"text": text, "verdict": verdict, "symbol": _SYMBOLS[verdict, better]}


def _cell(value, shown, path, report=None) -> dict:
    if value is None and path == _SQNR and _identical(report):
        return {"text": "∞ (identical outputs)"}
    return EMPTY.copy() if value is None else {"text": shown(value)}


def _identical(report) -> bool:
    error = report.get("output_error") if isinstance(report, dict) else None
    return isinstance(error, dict) and error.get("identical") is True


def _job_energy(entry) -> dict:
    return _cell(entry["job_energy_j"], lambda joules: f"{joules:,.1f}", ())


def _artifacts(entry) -> dict:
    return {"links": entry["artifacts"]} if entry["artifacts"] else EMPTY

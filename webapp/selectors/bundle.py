"""One zip of everything an experiment produced, readable with nothing else installed.

`<base>/` holds each artifact under a name that says what it is (`<model>-<recipe>-<variant>-<id>.<ext>`),
`report.json`, a `report.html` with its charts embedded (Plotly's library inside the file: it opens offline), and a
`MODEL_CARD.md` (the source model and its sha256, recipe and settings, lineage, dataset, measurements before and
after, library versions, worker, device, durations). Names are made here from ids and slugs, never taken from users.
"""
import html
import json
import re
import zipfile
from typing import BinaryIO

from webapp.models import Experiment
from webapp.selectors import series
from webapp.selectors.stored import open_stored

_SLUG = re.compile(r"[^a-z0-9]+")
_ROWS = (  # (report key, label, unit): the before/after measurements, as the experiment page shows them
    ("params", "parameters", ""), ("nonzero_params", "non-zero parameters", ""), ("size_bytes", "file size", "bytes"),
    ("macs", "MACs", ""), ("latency_ms_p50", "latency p50, batch 1", "ms"), ("throughput_per_s", "throughput", "/s"),
    ("peak_memory_mb", "peak memory", "MB"), ("accuracy", "accuracy", ""),
    ("agreement_top1", "top-1 agreement with the original", ""),
    ("energy_j_per_1000", "energy per 1,000 inputs", "J"),
)


def _slug(text: str, limit: int = 40) -> str:
    return _SLUG.sub("-", str(text).lower()).strip("-")[:limit].strip("-") or "x"


def bundle_base(experiment: Experiment) -> str:
    """`<model>-<recipe>-<variant>-<id>`: what the files are, from ids and slugs alone."""
    config = experiment.config or {}
    variant = config.get("variant") or config.get("method") or config.get("student") or "run"
    return f"{_slug(experiment.model.name)}-{_slug(experiment.recipe)}-{_slug(variant)}-{experiment.pk}"


def artifact_download_name(experiment: Experiment, artifact_name: str) -> str:
    """`model.pt` becomes `<base>.pt`, `model_compiled.pt2` `<base>-compiled.pt2`; other files keep their name
    after the base (`<base>-report.json`)."""
    base = bundle_base(experiment)
    if artifact_name.startswith("model"):
        rest = artifact_name[len("model"):]
        return base + rest.replace("_", "-")
    return f"{base}-{artifact_name}"


def write_bundle(experiment: Experiment, target: BinaryIO) -> None:
    base = bundle_base(experiment)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for artifact in experiment.artifacts.all():
            name = "report.json" if artifact.name == "report.json" else artifact_download_name(experiment,
                                                                                               artifact.name)
            with open_stored(artifact.file) as source, bundle.open(f"{base}/{name}", "w") as sink:
                while chunk := source.read(1 << 20):
                    sink.write(chunk)
        bundle.writestr(f"{base}/report.html", report_html(experiment))
        bundle.writestr(f"{base}/MODEL_CARD.md", model_card(experiment))


def _measurements(summary: dict) -> list[tuple[str, object, object, str]]:
    before, after = summary.get("before") or {}, summary.get("after") or {}
    return [(label, before.get(key), after.get(key), unit) for key, label, unit in _ROWS
            if before.get(key) is not None or after.get(key) is not None]


def _number(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _ratio(before, after) -> str:
    if isinstance(before, int | float) and isinstance(after, int | float) and before:
        return f"{after / before:.3g}×"
    return ""


def _lineage(experiment: Experiment) -> list[str]:
    lines = [f"source model: {experiment.model.name} (#{experiment.model_id}), sha256 {experiment.model.sha256}"]
    if experiment.rerun_of_id:
        lines.append(f"a re-run of experiment #{experiment.rerun_of_id} with edited settings")
    return lines


def model_card(experiment: Experiment) -> str:
    summary = experiment.summary or {}
    versions = summary.get("versions") or {}
    duration = (experiment.finished_at - experiment.started_at).total_seconds() \
        if experiment.finished_at and experiment.started_at else None
    rows = "\n".join(f"| {label} | {_number(before)} | {_number(after)} | {_ratio(before, after)} | {unit} |"
                     for label, before, after, unit in _measurements(summary))
    lines = [
        f"# {experiment.name or bundle_base(experiment)}",
        "",
        f"Slimforge experiment #{experiment.pk}: **{experiment.recipe}** of {experiment.model.name}, "
        f"status {experiment.status}.",
        "",
        "## Lineage", "", *[f"- {line}" for line in _lineage(experiment)], "",
        "## Recipe and settings", "", "```json", json.dumps(experiment.config, indent=2, sort_keys=True), "```", "",
        "## Data", "",
        f"- dataset: {experiment.dataset.name} (#{experiment.dataset_id})" if experiment.dataset
        else "- dataset: none (measured on the example input)",
        f"- example input: {summary.get('input_shape', experiment.model.input_shape)} "
        f"{summary.get('input_dtype', experiment.model.input_dtype)}", "",
        "## Measurements", "", "| | before | after | ratio | unit |", "|---|---|---|---|---|",
        rows or "| — | | | | |", "",
        "## Where and how long", "",
        f"- worker: {experiment.worker or '—'}, attempt {experiment.attempt}",
        f"- device: {summary.get('device', '—')}, {summary.get('threads', '—')} thread(s), backend "
        f"{summary.get('backend', '—')}",
        f"- created {experiment.created_at:%Y-%m-%d %H:%M:%S} UTC; ran {duration:.1f} s" if duration is not None
        else f"- created {experiment.created_at:%Y-%m-%d %H:%M:%S} UTC",
        "", "## Library versions", "",
        *([f"- {name} {version}" for name, version in sorted(versions.items())] or ["- not recorded by this run"]),
        "", "## Notes", "",
        *([f"- {note}" for note in summary.get("notes") or []] or ["- none"]),
    ]
    if experiment.notes:
        lines += ["", "## The owner's notes", "", experiment.notes]
    return "\n".join(lines) + "\n"


_UNITS = (("_percent", "percent"), ("_mb", "MB"), ("_w", "watts"), ("_c", "°C"), ("_mhz", "MHz"), ("_j", "joules"))


def _chart_groups(drawn: dict) -> list[tuple[str, str, str, list]]:
    """(title, x title, y title, [(name, line)]): resources one chart per unit (so percent and megabytes never
    share an axis), then one chart per training or search metric."""
    groups: dict[str, list] = {}
    for name, line in sorted(drawn.items()):
        if line["kind"] == "resource":
            unit = next((label for suffix, label in _UNITS if name.endswith(suffix)), "value")
            groups.setdefault(f"resource:{unit}", []).append((name, line))
        elif line["kind"] == "metric":
            groups.setdefault(f"metric:{name}", []).append((name, line))
    charts = []
    for key, lines in groups.items():
        kind, label = key.split(":", 1)
        if kind == "resource":
            charts.append((f"Resources ({label})", "seconds since the job started", label, lines))
        else:
            charts.append((label, "step", label.rsplit("/", 1)[-1].replace("_", " "), lines))
    return charts


def report_html(experiment: Experiment) -> str:
    """The report as one HTML file: the measurements and the run's charts, Plotly's library embedded."""
    import plotly.graph_objects as go
    import plotly.io as pio

    drawn = series.experiment_series(experiment_id=experiment.pk)["series"]
    figures = []
    for title, x_title, y_title, lines in _chart_groups(drawn):
        figure = go.Figure([go.Scatter(x=line["x"], y=line["y"], name=name, mode="lines" if len(line["x"]) > 60
                                       else "lines+markers") for name, line in lines])
        figure.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=360, showlegend=True,
                             margin={"t": 50, "l": 70, "r": 20, "b": 50})
        figures.append(figure)
    charts = "".join(pio.to_html(figure, full_html=False, include_plotlyjs=index == 0)
                     for index, figure in enumerate(figures)) or "<p>This run recorded no series.</p>"
    title = html.escape(experiment.name or bundle_base(experiment))
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td>{_number(before)}</td><td>{_number(after)}</td>"
                   f"<td>{_ratio(before, after)}</td><td>{html.escape(unit)}</td></tr>"
                   for label, before, after, unit in _measurements(experiment.summary or {}))
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>"
            "body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2rem auto;color:#111827}"
            "table{border-collapse:collapse}td,th{padding:.3rem .6rem;border-bottom:1px solid #e5e7eb;text-align:left}"
            f"</style></head><body><h1>{title}</h1>"
            f"<p>Slimforge experiment #{experiment.pk}: {html.escape(experiment.recipe)} of "
            f"{html.escape(experiment.model.name)}, {html.escape(experiment.status)}.</p>"
            "<h2>Before and after</h2><table><thead><tr><th></th><th>before</th><th>after</th><th>ratio</th>"
            f"<th>unit</th></tr></thead><tbody>{rows}</tbody></table>"
            f"<h2>Charts</h2>{charts}</body></html>")

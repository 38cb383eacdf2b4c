"""The `slimforge` command. Try `slimforge --help`, then `slimforge COMMAND --help`."""
import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from cli.client import Client, save_login
from cli.follow import FINISHED, follow

console = Console()
EXAMPLE = """
\b
A worked example (the server from `make run`, user admin):
  slimforge login http://127.0.0.1:8000 admin
  slimforge upload-model mlp.safetensors --name mlp --input-shape 1,64 \\
      --architecture mlp --architecture-config '{"hidden": [256, 128]}'
  slimforge upload-dataset --kind digits --name digits
  slimforge submit 1 quantize --set variant=dynamic_int8 --follow
  slimforge chain 1 --dataset 1 --step 'prune:{"method": "unstructured", "epochs": 1}' \\
      --step 'distill:{"student": "thinner_copy", "epochs": 2}' --step quantize --follow
  slimforge list
  slimforge compare 2 3
  slimforge bundle 2
"""


@click.group(epilog=EXAMPLE)
@click.option("--url", envvar="SLIMFORGE_URL", help="The server (default: the one you logged in to).")
@click.pass_context
def main(ctx, url):
    """Slimforge from the command line: upload models and datasets, run recipes and chains, follow them live,
    compare and download the results."""
    ctx.obj = {"url": url}


def _client(ctx) -> Client:
    return Client.from_settings(ctx.obj.get("url"))


@main.command()
@click.argument("url")
@click.argument("username")
@click.password_option(confirmation_prompt=False, envvar="SLIMFORGE_PASSWORD")
def login(url, username, password):
    """Get an API token for USERNAME at URL and keep it (readable by you alone) for the next commands."""
    answer = Client(url, None).post("/api/auth/token/", {"username": username, "password": password})
    path = save_login(url.rstrip("/"), answer["token"])
    console.print(f"Logged in to {url} as {username}; token kept in {path} (expires {answer['expiry']}).")


def _wait_ready(client: Client, path: str, what: str) -> dict:
    import time

    with console.status(f"A worker is inspecting the {what}…"):
        while (record := client.get(path))["status"] == "pending":
            time.sleep(1)
    if record["status"] != "ready":
        raise click.ClickException(f"The {what} #{record['id']} failed: {record['error']}")
    return record


@main.command("upload-model")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True)
@click.option("--input-shape", required=True, help="The example input's shape, e.g. 1,3,224,224.")
@click.option("--input-dtype", default="float32", show_default=True)
@click.option("--architecture", default="", help="A safetensors state dict's built-in architecture, e.g. mlp.")
@click.option("--architecture-config", default="", help="Its settings as JSON.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until a worker has inspected it.")
@click.pass_context
def upload_model(ctx, file, name, input_shape, input_dtype, architecture, architecture_config, wait):
    """Upload a model (TorchScript, torch.export .pt2, ONNX or a safetensors state dict)."""
    client = _client(ctx)
    with open(file, "rb") as handle:
        model = client.post("/api/models/", {"name": name, "input_shape": input_shape, "input_dtype": input_dtype,
                                             "architecture": architecture, "architecture_config": architecture_config},
                            files={"file": (file.name, handle)})
    if wait:
        model = _wait_ready(client, f"/api/models/{model['id']}/", "model")
    console.print(f"Model #{model['id']} {model['name']}: {model['status']} {model.get('format') or ''}")


@main.command("upload-dataset")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True)
@click.option("--kind", required=True,
              help="digits (built in), npz, csv, images (a zip of class folders) or text (.txt, .jsonl or .csv).")
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.pass_context
def upload_dataset(ctx, file, name, kind, wait):
    """Add a dataset: a file of yours, or the built-in digits (no FILE)."""
    client = _client(ctx)
    if file is None:
        dataset = client.post("/api/datasets/", {"name": name, "kind": kind})
    else:
        with open(file, "rb") as handle:
            dataset = client.post("/api/datasets/", {"name": name, "kind": kind}, files={"file": (file.name, handle)})
    if wait:
        dataset = _wait_ready(client, f"/api/datasets/{dataset['id']}/", "dataset")
    console.print(f"Dataset #{dataset['id']} {dataset['name']}: {dataset['status']}")


def _settings(pairs: tuple[str, ...], config: str) -> dict:
    """--config JSON, then each --set key=value over it (a value that reads as JSON is taken as such)."""
    try:
        settings = json.loads(config) if config else {}
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--config") from None
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="--set")
        try:
            settings[key] = json.loads(value)
        except ValueError:
            settings[key] = value
    return settings


def _follow_to_end(client: Client, experiment_id: int) -> None:
    status, error = follow(client, experiment_id, console)
    colour = {"succeeded": "green", "failed": "red"}.get(status, "yellow")
    console.print(f"Experiment #{experiment_id}: [{colour}]{status}[/{colour}] {error}")
    if status != "succeeded":
        raise SystemExit(1)


@main.command()
@click.argument("model_id", type=int)
@click.argument("recipe")
@click.option("--dataset", type=int, help="A dataset's id, for recipes that train or measure accuracy.")
@click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE", help="One setting (repeat for more).")
@click.option("--config", default="", help="All settings as one JSON object.")
@click.option("--run-on", "device_shape", default="any", show_default=True,
              help="The worker it asks for: any, cpu, gpu (one GPU) or gpu-xN (N GPUs).")
@click.option("--hosts", type=int, default=1, show_default=True,
              help="Train on this many workers of the --run-on shape at once (DDP across hosts; prune, distill).")
@click.option("--follow/--no-follow", "follow_it", default=False, help="Follow it live until it ends.")
@click.pass_context
def submit(ctx, model_id, recipe, dataset, pairs, config, device_shape, hosts, follow_it):
    """Run RECIPE (quantize, prune, distill, parallelize) on model MODEL_ID."""
    client = _client(ctx)
    experiment = client.post("/api/experiments/", {"model": model_id, "recipe": recipe, "dataset": dataset,
                                                   "config": _settings(pairs, config), "device_shape": device_shape,
                                                   "hosts": hosts})
    console.print(f"Experiment #{experiment['id']} queued. {experiment.get('waiting', '')}".strip())
    if follow_it:
        _follow_to_end(client, experiment["id"])


@main.command()
@click.argument("model_id", type=int)
@click.option("--step", "steps", multiple=True, required=True, metavar="RECIPE[:JSON]",
              help='One step, in order: a recipe, with its settings after a colon (prune:{"epochs": 1}).')
@click.option("--dataset", type=int, help="The dataset every step that needs one uses.")
@click.option("--name", default="")
@click.option("--follow/--no-follow", "follow_it", default=False, help="Follow each step until the chain ends.")
@click.pass_context
def chain(ctx, model_id, steps, dataset, name, follow_it):
    """Run recipes one after another on model MODEL_ID, each on the model the step before made."""
    parsed = []
    for step in steps:
        recipe, _, settings = step.partition(":")
        parsed.append({"recipe": recipe, "config": _settings((), settings), "dataset": dataset})
    client = _client(ctx)
    made = client.post("/api/chains/", {"model": model_id, "name": name, "steps": parsed})
    console.print(f"Chain #{made['id']} started: {' → '.join(s['recipe'] for s in made['steps'])}")
    if follow_it:
        _follow_chain(client, made["id"])


def _follow_chain(client: Client, chain_id: int) -> None:
    import time

    followed = set()
    while (current := client.get(f"/api/chains/{chain_id}/"))["status"] == "running":
        step = current["steps"][current["current_index"]]
        experiment = step["experiment"]
        if experiment and experiment["id"] not in followed and experiment["status"] not in FINISHED:
            console.print(f"Step {step['index'] + 1}: {step['recipe']} (experiment #{experiment['id']})")
            followed.add(experiment["id"])
            follow(client, experiment["id"], console)
        else:
            time.sleep(1)  # between steps: the result is being registered and inspected
    colour = "green" if current["status"] == "succeeded" else "red"
    console.print(f"Chain #{chain_id}: [{colour}]{current['status']}[/{colour}] {current['error']}")
    _print_first_vs_final(current)
    if current["status"] != "succeeded":
        raise SystemExit(1)


def _print_first_vs_final(chain_view: dict) -> None:
    if not chain_view["first_vs_final"]:
        return
    table = Table(title="The first model against the final one")
    for column in ("measure", "first", "final", "final ÷ first"):
        table.add_column(column)
    for row in chain_view["first_vs_final"]:
        ratio = f"{row['ratio']:.3f}×" if row["ratio"] is not None else "—"
        table.add_row(row["label"], _cell(row["first"]), _cell(row["final"]), ratio)
    console.print(table)


def _cell(value) -> str:
    return "—" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))


@main.command("follow")
@click.argument("experiment_id", type=int)
@click.pass_context
def follow_command(ctx, experiment_id):
    """Follow an experiment live until it ends (reconnecting, without a gap, if the connection drops)."""
    _follow_to_end(_client(ctx), experiment_id)


@main.command()
@click.argument("experiment_id", type=int)
@click.pass_context
def cancel(ctx, experiment_id):
    """Cancel a queued or running experiment."""
    experiment = _client(ctx).post(f"/api/experiments/{experiment_id}/cancel/")
    state = "cancelled" if experiment["status"] == "cancelled" else "stopping at its next step"
    console.print(f"Experiment #{experiment_id} is {state}.")


@main.command()
@click.argument("experiment_id", type=int)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True)
@click.pass_context
def bundle(ctx, experiment_id, out):
    """Download a finished experiment's bundle: every format, report.json, report.html and the model card."""
    out.mkdir(parents=True, exist_ok=True)
    path = _client(ctx).download(f"/api/experiments/{experiment_id}/bundle/",
                                 out / f"slimforge-experiment-{experiment_id}.zip")
    console.print(f"Saved {path} ({path.stat().st_size:,} bytes).")


@main.command("list")
@click.option("--status", default="", help="queued, running, succeeded, failed or cancelled.")
@click.option("--recipe", default="")
@click.option("--search", "q", default="", help="Name, tag, notes, model, recipe or #id.")
@click.option("--limit", default=20, show_default=True)
@click.pass_context
def list_command(ctx, status, recipe, q, limit):
    """Your experiments, newest first."""
    page = _client(ctx).get("/api/experiments/", status=status, recipe=recipe, q=q, limit=limit)
    table = Table(title=f"Experiments ({page['count']})")
    for column in ("#", "name", "model", "recipe", "status", "progress", "created"):
        table.add_column(column)
    for e in page["results"]:
        table.add_row(str(e["id"]), e["name"] or "—", str(e["model"]), e["recipe"], e["status"],
                      f"{e['progress']:.0%}", e["created_at"][:19].replace("T", " "))
    console.print(table)


@main.command()
@click.argument("experiment_ids", type=int, nargs=-1, required=True)
@click.pass_context
def compare(ctx, experiment_ids):
    """Compare experiments' results side by side (accuracy, latency, size, energy)."""
    data = _client(ctx).get("/api/compare/", ids=",".join(map(str, experiment_ids)))
    table = Table(title="Comparison")
    table.add_column("#")
    table.add_column("recipe")
    for axis in data["axes"]:
        table.add_column(f"{axis['label']} ({axis['better']} is better)")
    for entry in data["experiments"]:
        table.add_row(str(entry["id"]), f"{entry['recipe']} {entry['variant']}".strip(),
                      *(_cell(entry["values"][axis["key"]]) for axis in data["axes"]))
    console.print(table)

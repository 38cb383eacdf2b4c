"""The job description the worker writes for the sandbox child (`python -m optimizers.job_child`).

Standard library only, so task code can build and check a spec without importing torch.
Bad values here are the caller's bug, hence SpecError; bad recipe settings are the user's
and stay ConfigError, raised by `optimizers.configs.parse_config` when the job runs (and bad
architecture settings by `optimizers.zoo` when the model is built).

Actions: "inspect" and "run" work on the model at model_path ("run" writes into out_dir);
"dataset" reads dataset_source of dataset_kind and writes a normalized dataset.npz into out_dir.
A "run" on several hosts carries `hosts` with node 0; each further host runs a "ranks" job (no model: it runs the
replicas the first host sends it, optimizers.training.follower), its `hosts` naming its node and out_dir a scratch
folder.
"""

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from optimizers.errors import SpecError
from optimizers.shapes import check_input_shape, parse_dtype

ACTIONS = ("inspect", "run", "dataset", "ranks")
MAX_HOSTS = 64
HOSTS_KEYS = {"count", "node", "address", "port", "interface", "wait_s", "secret"}
SECRET_HEX = 64  # 32 random bytes
DATASET_KINDS = ("npz", "csv", "images", "digits", "text")  # as optimizers.data.options (which sits above)


@dataclass(frozen=True)
class JobSpec:
    action: str
    model_path: str = ""
    input_shape: tuple[int, ...] = ()
    input_dtype: str = "float32"
    recipe: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    out_dir: str | None = None
    # {"name": "resnet", "config": {...}}: the architecture a safetensors state dict is loaded into.
    architecture: dict[str, Any] | None = None
    dataset_path: str | None = None  # a prepared dataset.npz for accuracy and recipes that train
    dataset_source: str | None = None
    dataset_kind: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    # Where recipes that train keep their per-epoch checkpoints: the same directory for every attempt of one
    # experiment, so a retried job resumes after the last finished epoch. None: no checkpoints.
    checkpoint_dir: str | None = None
    # Other uploaded models the recipe's settings name, by role: {"student": {"path": ..., "architecture": ...}}.
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    # A job on several hosts (optimizers.training.hosts.Hosts): count, node (this host's, 0 the first), address and
    # port of the first host's store, this host's network interface, wait_s for the hosts to join, the job's secret.
    hosts: dict[str, Any] | None = None

    def files_read(self) -> list[str]:
        """Every file the job reads (the sandbox shows it these, read-only, and nothing else of the worker's)."""
        paths = [self.model_path, self.dataset_path, self.dataset_source,
                 *(entry["path"] for entry in self.models.values())]
        return [path for path in paths if path]

    def folders_written(self) -> list[str]:
        """Every folder the job writes (the sandbox shows it these, writable)."""
        return [path for path in (self.out_dir, self.checkpoint_dir) if path]

    @classmethod
    def from_dict(cls, data: Any) -> "JobSpec":
        if not isinstance(data, dict):
            raise SpecError(f"the job spec must be a JSON object; got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise SpecError(f"unknown job spec keys: {', '.join(unknown)}")
        action = data.get("action")
        if action not in ACTIONS:
            raise SpecError(f"job spec action must be one of {', '.join(ACTIONS)}; got {action!r}")
        if action in ("run", "dataset", "ranks"):
            _require_text(data, "out_dir", f"for action {action}")
        if action == "dataset":
            return cls(action, out_dir=data["out_dir"], **_dataset_fields(data))
        hosts = _hosts(data.get("hosts"), action)
        if action == "ranks":
            return cls(action, out_dir=data["out_dir"], hosts=hosts)
        _require_text(data, "model_path")
        try:
            shape = check_input_shape(data.get("input_shape"))
            dtype = parse_dtype(data.get("input_dtype", "float32"))
        except ValueError as error:
            raise SpecError(f"job spec: {error}") from error
        # recipe and config are validated by parse_config so the user sees a ConfigError.
        return cls(action, data["model_path"], shape, dtype, data.get("recipe"), data.get("config", {}),
                   data.get("out_dir"), _architecture(data.get("architecture")), _optional_text(data, "dataset_path"),
                   checkpoint_dir=_optional_text(data, "checkpoint_dir"), models=_models(data.get("models", {})),
                   hosts=hosts)

    @classmethod
    def build(cls, **fields: Any) -> "JobSpec":
        """A checked spec from keyword fields, as the child will read it: a wrong key or value fails in the worker,
        before any child starts."""
        return cls.from_dict(fields)

    def to_dict(self) -> dict[str, Any]:
        as_dict = asdict(self)
        as_dict["input_shape"] = list(self.input_shape)
        return as_dict


def _require_text(data: dict, key: str, when: str = "") -> None:
    if not isinstance(data.get(key), str) or not data[key]:
        raise SpecError(f"job spec {key} must be a non-empty string" + (f" {when}" if when else ""))


def _optional_text(data: dict, key: str) -> str | None:
    if data.get(key) is not None:
        _require_text(data, key)
    return data.get(key)


def _architecture(value: Any) -> dict[str, Any] | None:
    """Only the shape is checked here; the name and settings are the zoo's to judge (as ConfigError)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"]:
        raise SpecError(f"job spec architecture must be an object with a non-empty name; got {value!r}")
    unknown = sorted(set(value) - {"name", "config"})
    if unknown:
        raise SpecError(f"unknown job spec architecture keys: {', '.join(unknown)}")
    config = value.get("config", {})
    if not isinstance(config, dict):
        raise SpecError(f"job spec architecture config must be an object; got {type(config).__name__}")
    return {"name": value["name"], "config": config}


def _models(value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        raise SpecError(f"job spec models must be an object of roles; got {type(value).__name__}")
    models = {}
    for role, model in value.items():
        if not isinstance(model, dict) or not isinstance(model.get("path"), str) or not model["path"]:
            raise SpecError(f"job spec model {role!r} must be an object with a non-empty path")
        unknown = sorted(set(model) - {"path", "architecture"})
        if unknown:
            raise SpecError(f"unknown job spec model keys: {', '.join(unknown)}")
        models[str(role)] = {"path": model["path"], "architecture": _architecture(model.get("architecture"))}
    return models


def _hosts(value: Any, action: str) -> dict[str, Any] | None:
    """None for a job on one host; else every key checked: only the first host runs the job, the others "ranks"."""
    if value is None:
        if action == "ranks":
            raise SpecError("job spec action ranks needs hosts")
        return None
    if not isinstance(value, dict) or set(value) != HOSTS_KEYS:
        raise SpecError(f"job spec hosts must be an object of exactly {', '.join(sorted(HOSTS_KEYS))}; got {value!r}")
    count, node, port, wait_s = value["count"], value["node"], value["port"], value["wait_s"]
    if not all(isinstance(number, int) and not isinstance(number, bool) for number in (count, node, port)):
        raise SpecError(f"job spec hosts count, node and port must be integers; got {value!r}")
    if not 2 <= count <= MAX_HOSTS or not 0 <= node < count or not 1 <= port <= 65535:
        raise SpecError(f"job spec hosts: count 2..{MAX_HOSTS}, node 0..count-1, port 1..65535; got {value!r}")
    if action == "inspect" or (action == "run") != (node == 0):
        raise SpecError(f"job spec hosts: the first host (node 0) runs the job, the others action ranks; got node "
                        f"{node} for action {action}")
    try:
        ipaddress.ip_address(value["address"])
    except (ValueError, TypeError):
        raise SpecError(f"job spec hosts address must be an IP address; got {value['address']!r}") from None
    if not isinstance(value["interface"], str) or not value["interface"]:
        raise SpecError("job spec hosts interface must be a non-empty string")
    if not isinstance(wait_s, (int, float)) or isinstance(wait_s, bool) or wait_s <= 0:
        raise SpecError(f"job spec hosts wait_s must be a positive number; got {wait_s!r}")
    secret = value["secret"]
    if not isinstance(secret, str) or len(secret) != SECRET_HEX or not all(c in "0123456789abcdef" for c in secret):
        raise SpecError(f"job spec hosts secret must be {SECRET_HEX} lowercase hex digits")
    return dict(value)


def _dataset_fields(data: dict) -> dict[str, Any]:
    kind = data.get("dataset_kind")
    if kind not in DATASET_KINDS:
        raise SpecError(f"job spec dataset_kind must be one of {', '.join(DATASET_KINDS)}; got {kind!r}")
    if kind != "digits":  # the digits ship with scikit-learn: no source file
        _require_text(data, "dataset_source", f"for dataset_kind {kind}")
    options = data.get("dataset_options", {})
    if not isinstance(options, dict):
        raise SpecError(f"job spec dataset_options must be an object; got {type(options).__name__}")
    return {"dataset_kind": kind, "dataset_source": data.get("dataset_source"), "dataset_options": options}


def read_spec(path: str | os.PathLike) -> JobSpec:
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError) as error:
        raise SpecError(f"cannot read the job spec {os.fspath(path)!r}: {error}") from error
    return JobSpec.from_dict(data)

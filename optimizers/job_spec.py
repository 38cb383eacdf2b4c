"""The job description the worker writes for the sandbox child (`python -m optimizers.sandbox`).

Standard library only, so task code can build and check a spec without importing torch.
Bad values here are the caller's bug, hence SpecError; bad recipe settings are the user's
and stay ConfigError, raised by `optimizers.configs.parse_config` when the job runs.
"""

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from optimizers.errors import SpecError
from optimizers.shapes import check_input_shape, parse_dtype

ACTIONS = ("inspect", "run")


@dataclass(frozen=True)
class JobSpec:
    action: str
    model_path: str
    input_shape: tuple[int, ...]
    input_dtype: str = "float32"
    recipe: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    out_dir: str | None = None

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
        if not isinstance(data.get("model_path"), str) or not data["model_path"]:
            raise SpecError("job spec model_path must be a non-empty string")
        try:
            shape = check_input_shape(data.get("input_shape"))
            dtype = parse_dtype(data.get("input_dtype", "float32"))
        except ValueError as error:
            raise SpecError(f"job spec: {error}") from error
        if action == "run":
            if not isinstance(data.get("out_dir"), str) or not data["out_dir"]:
                raise SpecError("job spec out_dir must be a non-empty string for action run")
            # recipe and config are validated by parse_config so the user sees a ConfigError.
        return cls(action, data["model_path"], shape, dtype, data.get("recipe"),
                   data.get("config", {}), data.get("out_dir"))

    def to_dict(self) -> dict[str, Any]:
        as_dict = asdict(self)
        as_dict["input_shape"] = list(self.input_shape)
        return as_dict


def read_spec(path: str | os.PathLike) -> JobSpec:
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError) as error:
        raise SpecError(f"cannot read the job spec {os.fspath(path)!r}: {error}") from error
    return JobSpec.from_dict(data)

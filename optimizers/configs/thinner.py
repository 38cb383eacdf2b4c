"""The settings of a thinner or shallower copy of a built-in teacher (standard library only: the form shows the
copy's parameter count before anything runs; optimizers.recipes.distill.thinner builds it from the teacher's
weights)."""
from typing import Any

from optimizers.configs.architectures import parse_architecture


def every_other(count: int) -> list[int]:
    """The blocks a half-depth copy keeps: 0, 2, 4, .. (the first always)."""
    return list(range(0, count, 2))


def kept_units(count: int, width: float) -> int:
    return max(1, round(count * width))


def thinner_settings(name: str, config: dict[str, Any], width: float, half: bool) -> tuple[dict[str, Any], list[str]]:
    """(the copy's architecture settings, notes on what the width or depth does not change) for a teacher built
    as `name` with `config`."""
    config = parse_architecture(name, config).to_dict()
    if name == "mlp":
        notes = ["an MLP keeps its depth: its hidden layers differ in width"] if half and config["hidden"] else []
        return {**config, "hidden": [kept_units(size, width) for size in config["hidden"]]}, notes
    if name == "small_cnn":
        notes = ["a small CNN keeps its stages: each halves the image"] if half else []
        return {**config, "channels": [kept_units(size, width) for size in config["channels"]]}, notes
    narrow = " (student_width applies to MLPs and small CNNs)" if width < 1 else ""
    if name == "resnet":
        notes = [f"a ResNet copy keeps its channel width{narrow}: narrow it with a builtin student"] if narrow else []
        layers = [len(every_other(count)) for count in config["layers"]] if half else config["layers"]
        return {**config, "layers": layers}, notes
    notes = [f"a Transformer copy keeps its width{narrow}"] if narrow else []
    return {**config, "layers": len(every_other(config["layers"])) if half else config["layers"]}, notes

"""Can a dataset's samples feed a model? Standard library only: the web asks before it queues a job.

`fit_plan` holds the rules once; `optimizers.data.splits.fit_to_input` carries its plan out with torch,
so the web's answer and the worker's behaviour cannot drift apart. Shapes: a dataset's per-sample shape
(without N) and the model's example input shape (with its batch dimension, usually 1).
The rules: equal shapes pass; a model taking [1, F] gets samples flattened when they hold F values;
a model taking [1, C, H, W] gets images ([C, H, W], or [H, W] as one channel) with 1 channel repeated
to 3 or 3 averaged to 1, and resized (bilinear) to H x W. Anything else is refused with the reason.
"""

import math
from collections.abc import Sequence

from optimizers.shapes import format_shape

FLOAT_DTYPES = ("float32", "float16", "bfloat16")


def fit_plan(sample_shape: Sequence[int], model_input_shape: Sequence[int]) -> list[tuple]:
    """The steps that turn [N, *sample_shape] into the model's input, or ValueError naming both shapes.

    Steps, in order: ("add_channel",), ("repeat_channels", 3), ("average_channels",), ("resize", H, W),
    ("flatten",).
    """
    sample, wanted = tuple(sample_shape), tuple(model_input_shape)[1:]

    def refuse(reason: str) -> ValueError:
        return ValueError(f"samples of shape {format_shape(sample)} cannot feed a model that takes "
                          f"{format_shape(model_input_shape)}: {reason}")

    if not sample or not wanted:
        raise refuse("both need at least one dimension per sample (the model's first is its batch)")
    if sample == wanted:
        return []
    if len(wanted) == 1:
        if math.prod(sample) == wanted[0]:
            return [("flatten",)]
        raise refuse(f"it takes {wanted[0]} values per sample and a sample holds {math.prod(sample)}")
    if len(wanted) != 3 or len(sample) not in (2, 3):
        raise refuse("only equal shapes, flattening to a feature vector and resizing images are supported")
    plan = [("add_channel",)] if len(sample) == 2 else []
    channels, height, width = (1, *sample) if len(sample) == 2 else sample
    if channels != wanted[0]:
        if channels == 1 and wanted[0] == 3:
            plan.append(("repeat_channels", 3))
        elif channels == 3 and wanted[0] == 1:
            plan.append(("average_channels",))
        else:
            raise refuse(f"the samples have {channels} channels and the model {wanted[0]}; "
                         "only 1 to 3 and 3 to 1 are converted")
    if (height, width) != wanted[1:]:
        plan.append(("resize", wanted[1], wanted[2]))
    return plan


def compatibility(sample_shape: Sequence[int], model_input_shape: Sequence[int],
                  model_input_dtype: str = "float32") -> str | None:
    """None when `fit_to_input` can make the samples fit the model, else the reason (a sentence for the user)."""
    if model_input_dtype not in FLOAT_DTYPES:
        return (f"the model takes {model_input_dtype} inputs; datasets hold float32 samples "
                f"(one of {', '.join(FLOAT_DTYPES)} is needed)")
    try:
        fit_plan(sample_shape, model_input_shape)
    except ValueError as error:
        return str(error)
    return None


def describe_fit(sample_shape: Sequence[int], model_input_shape: Sequence[int],
                 model_input_dtype: str = "float32") -> str | None:
    """What `fit_to_input` does to make the samples fit the model, in words; None when they fit as they are.

    Reports and pages say it: an accuracy measured on resized images is not one measured on the dataset as given.
    """
    try:
        plan = fit_plan(sample_shape, model_input_shape)
    except ValueError:
        return None
    words = {"add_channel": "given a channel dimension", "repeat_channels": "1 channel repeated to 3",
             "average_channels": "3 channels averaged to 1", "flatten": "flattened"}
    done = []
    for step in plan:
        if step[0] == "resize":
            height, width = tuple(sample_shape)[-2:]
            done.append(f"resized (bilinear) from {height}x{width} to {step[1]}x{step[2]}")
        else:
            done.append(words[step[0]])
    if model_input_dtype != "float32":
        done.append(f"cast from float32 to {model_input_dtype}")
    if not done:
        return None
    return (f"The dataset's samples ({format_shape(sample_shape)}) were adapted to the model's input "
            f"{format_shape(model_input_shape)}: {', '.join(done)}.")

"""Can a dataset's samples feed a model? Standard library only: the web asks before it queues a job.

`fit_plan` holds the rules once; `optimizers.data.splits.fit_to_input` carries its plan out with torch,
so the web's answer and the worker's behaviour cannot drift apart. Shapes: a dataset's per-sample shape
(without N) and the model's example input shape (with its batch dimension, usually 1).
The rules: equal shapes pass; a model taking [1, F] gets samples flattened when they hold F values;
a model taking [1, C, H, W] gets images ([C, H, W], or [H, W] as one channel) with 1 channel repeated
to 3 or 3 averaged to 1, and resized (bilinear) to H x W. Anything else is refused with the reason.

Dtypes: a dataset's samples are float32, int64 token ids (an .npz of integers [N, L]) or texts (a text dataset).
A float model takes float32 or int64 samples (ids become float32 values, as integer features always did); a
model that takes int64 takes only int64 samples, of any length, and never floats; texts feed only a Hugging
Face folder's model, whose own tokenizer makes token ids of them in the job (`optimizers.data.tokens`).
"""

import math
from collections.abc import Iterable, Sequence

from optimizers.shapes import format_shape

FLOAT_DTYPES = ("float32", "float16", "bfloat16")
TOKEN_DTYPE = "int64"  # a model's input dtype, and a dataset's, for token ids
TEXT_DTYPE = "text"  # a text dataset's dtype in its info: texts, not yet token ids
# The tokenizer files a Hugging Face folder may hold that Slimforge reads, in the order it prefers them.
TOKENIZER_FILE_SETS = (("tokenizer.json",), ("vocab.txt",), ("vocab.json", "merges.txt"))


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


def token_ids_refusal(sample_shape: Sequence[int], model_input_shape: Sequence[int], model_input_dtype: str,
                      sample_dtype: str) -> str | None:
    """For a model whose input is not float: None when the samples pass to it as they are, else the reason.

    Token ids pass whatever their length: only the number of dimensions must match the model's.
    """
    if model_input_dtype != TOKEN_DTYPE:
        return f"the model takes {model_input_dtype} inputs, which no dataset holds"
    if sample_dtype != TOKEN_DTYPE:
        return (f"the model takes int64 token ids and the dataset holds {sample_dtype} samples; token ids are never "
                "made from numbers: upload the ids as integers in an .npz, or the texts as a text dataset")
    wanted = tuple(model_input_shape)[1:]
    if len(tuple(sample_shape)) != len(wanted):
        return (f"token ids of shape {format_shape(sample_shape)} cannot feed a model that takes "
                f"{format_shape(model_input_shape)}: it needs samples of {len(wanted)} dimension(s) (without N)")
    if tuple(sample_shape)[:-1] != wanted[:-1]:
        return (f"token ids of shape {format_shape(sample_shape)} cannot feed a model that takes "
                f"{format_shape(model_input_shape)}: only the last dimension (the length) may differ")
    return None


def tokenizer_files_used(files: Iterable[str]) -> tuple[str, ...] | None:
    """The tokenizer files of a Hugging Face folder (its file names) that a job reads, or None when it has none."""
    present = set(files)
    return next((wanted for wanted in TOKENIZER_FILE_SETS if set(wanted) <= present), None)


def text_compatibility(folder_files: Iterable[str] | None) -> str | None:
    """None when a text dataset can feed a model, else the reason. `folder_files`: the file names of the model's
    Hugging Face folder, None when the model is no Hugging Face folder (it has no tokenizer to make ids with)."""
    if folder_files is None:
        return ("a text dataset is tokenized by the model's own tokenizer, so it needs a Hugging Face folder "
                "model (transformers); use an .npz of token ids or of features for this model")
    if tokenizer_files_used(folder_files) is None:
        wanted = ", ".join(" with ".join(files) for files in TOKENIZER_FILE_SETS)
        return f"the model's folder has no tokenizer to make token ids of the texts (it needs one of: {wanted})"
    return None


def compatibility(sample_shape: Sequence[int] | None, model_input_shape: Sequence[int],
                  model_input_dtype: str = "float32", sample_dtype: str = "float32",
                  folder_files: Iterable[str] | None = None) -> str | None:
    """None when the dataset's samples can feed the model (`fit_to_input`, or for texts the model's tokenizer),
    else the reason (a sentence for the user). `folder_files`: as `text_compatibility` takes them."""
    if sample_dtype == TEXT_DTYPE:
        reason = text_compatibility(folder_files)
        if reason is None and model_input_dtype != TOKEN_DTYPE:
            reason = (f"the model was described as taking {model_input_dtype} inputs; its tokenizer makes int64 "
                      "token ids of the texts")
        return reason
    if model_input_dtype not in FLOAT_DTYPES:
        return token_ids_refusal(sample_shape or (), model_input_shape, model_input_dtype, sample_dtype)
    try:
        fit_plan(sample_shape, model_input_shape)
    except ValueError as error:
        return str(error)
    return None


def describe_fit(sample_shape: Sequence[int], model_input_shape: Sequence[int],
                 model_input_dtype: str = "float32", sample_dtype: str = "float32") -> str | None:
    """What `fit_to_input` does to make the samples fit the model, in words; None when they fit as they are.

    Reports and pages say it: an accuracy measured on resized images is not one measured on the dataset as given.
    """
    if model_input_dtype not in FLOAT_DTYPES or sample_dtype == TEXT_DTYPE:
        return None  # token ids pass as they are; texts are described by their tokenization
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
    if model_input_dtype != sample_dtype:
        done.append(f"cast from {sample_dtype} to {model_input_dtype}")
    if not done:
        return None
    return (f"The dataset's samples ({format_shape(sample_shape)}) were adapted to the model's input "
            f"{format_shape(model_input_shape)}: {', '.join(done)}.")

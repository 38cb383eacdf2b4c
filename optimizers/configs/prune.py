"""Settings of the prune recipe (standard library only: the web validates forms with it).

Every method fine-tunes on the dataset (the fields inherited from `FineTuneSettings`), so a prune
experiment needs a dataset: `needs_dataset` says so before anything is queued. It needs labels unless structured
pruning fine-tunes on the original's outputs (`fine_tune_on`), which any samples give.
"""
import dataclasses
from typing import ClassVar

from optimizers.configs.base import RecipeConfig, setting
from optimizers.configs.finetune import FineTuneSettings
from optimizers.errors import ConfigError

UNSTRUCTURED, STRUCTURED, SEMI_STRUCTURED = "unstructured", "structured", "semi_structured_2_4"
METHODS = (UNSTRUCTURED, STRUCTURED, SEMI_STRUCTURED)
ACTIVATION = "activation"
IMPORTANCES = ("magnitude", "taylor", ACTIVATION)
LABELS, ORIGINAL_OUTPUTS = "labels", "original_outputs"
FINE_TUNE_TARGETS = (LABELS, ORIGINAL_OUTPUTS)


@dataclasses.dataclass(frozen=True)
class PruneConfig(RecipeConfig, FineTuneSettings):
    recipe: ClassVar[str] = "prune"
    variant_field: ClassVar[str] = "method"

    # A pruned model has lost part of what it learnt: it recovers faster at about its training rate than at the
    # small step that suits an intact model (a structured ResNet on digits: -2.2 points at 1e-3, +0.6 at 3e-3).
    learning_rate: float = setting(
        3e-3, "Step size at the start of fine-tuning. Pruned models recover best at about the rate they were "
        "trained with: about 3e-3 for AdamW, 1e-2 for SGD.", min=1e-7, max=1.0)
    method: str = setting(
        UNSTRUCTURED,
        "unstructured: zero the smallest weights across all layers (global magnitude) until target_sparsity is "
        "reached; the file keeps its size, the compressed sparse download shrinks, latency does not change. "
        "structured: remove whole channels and neurons (Torch-Pruning) until the target MACs or parameter ratio "
        "holds; the model really gets smaller and faster. semi_structured_2_4: zero 2 of every 4 weights of the "
        "Linear layers, for NVIDIA GPUs' sparse tensor cores; runs on CUDA only and only where it measures faster.",
        choices=METHODS,
    )
    target_sparsity: float = setting(
        0.8, "unstructured: fraction of the Conv and Linear weights set to zero (0.8 keeps 1 in 5).",
        min=0.05, max=0.99)
    agp_steps: int = setting(
        4, "unstructured and structured: pruning steps of the gradual schedule (AGP: big steps first, small "
        "ones near the target), with fine-tuning after each. 1 prunes at once.", min=1, max=50)
    epochs_per_step: int = setting(
        1, "Fine-tuning epochs after each intermediate pruning step; after the last step the model fine-tunes "
        "for `epochs`. 0 prunes the intermediate steps without training in between.", min=0, max=50)
    target_macs_ratio: float = setting(
        0.5, "structured: keep at most this fraction of the multiply-accumulates of one forward pass "
        "(0.5 = half the MACs, about 2x less compute). 1 sets no MACs target.", min=0.05, max=1.0)
    target_params_ratio: float = setting(
        1.0, "structured: keep at most this fraction of the parameters. 1 sets no parameter target; with both "
        "targets below 1, pruning goes on until both hold.", min=0.05, max=1.0)
    importance: str = setting(
        "magnitude", "structured: how channels are ranked before the weakest are removed. magnitude: the L2 norm "
        "of each channel's weights (no data needed). taylor: the first-order estimate of the loss change if "
        "the channel went, from gradients on a few training batches (often more accurate, a little slower). "
        "activation (transformers models only): each attention head's and feed-forward neuron's mean contribution "
        "to its layer's output on a few training batches; no gradients, so it suits fine-tuning on the original's "
        "outputs, whose loss has no gradient before anything is removed.",
        choices=IMPORTANCES)
    ignore_classifier: bool = setting(
        True, "Leave the final classifier (the last Linear layer) dense: it decides between the classes and "
        "suffers most from pruning. Structured pruning never removes its outputs (the classes) either way.")
    fine_tune_on: str = setting(
        LABELS, "What fine-tuning learns from. labels: the dataset's labels (cross-entropy), judged by validation "
        "accuracy. original_outputs (structured only): the unpruned model's own outputs on the same samples "
        "(1 - cosine similarity, per token for a transformers encoder), judged by the mean cosine on the validation "
        "split; no labels needed, so plain sentences fine-tune a sentence-embedding model.",
        choices=FINE_TUNE_TARGETS)
    trim_vocabulary: bool = setting(
        False, "structured, Hugging Face encoders with a WordPiece tokenizer (BERT-like) and a text dataset: drop the "
        "token embeddings the training texts never use (often half a small encoder's parameters), keeping every "
        "special and single-character token so any text still tokenizes, and rewrite the tokenizer to the new ids. "
        "The trimmed rows count toward target_params_ratio, and the rows it leaves room for keep the vocabulary's "
        "first (most frequent) other tokens; heads and neurons are removed only for what is still missing "
        "(attention heads are kept, so the result stays a Hugging Face folder with its tokenizer).")
    min_speedup: float = setting(
        1.1, "semi_structured_2_4: a Linear layer is made 2:4 sparse only if its sparse matmul measured at least "
        "this many times faster than dense on this GPU; if none is, the job is refused with the timings.",
        min=1.0, max=10.0)

    def check_combination(self) -> None:
        if self.method == STRUCTURED and self.target_macs_ratio >= 1.0 and self.target_params_ratio >= 1.0:
            raise ConfigError("target_macs_ratio", "structured pruning needs a target below 1: set "
                                                   "target_macs_ratio or target_params_ratio")
        if self.trim_vocabulary and self.method != STRUCTURED:
            raise ConfigError("trim_vocabulary", f"vocabulary trimming is built for structured pruning of Hugging "
                                                 f"Face encoders; {self.method} pruning keeps every weight's shape")
        if self.fine_tune_on == ORIGINAL_OUTPUTS and self.method != STRUCTURED:
            raise ConfigError("fine_tune_on", f"fine-tuning on the original's outputs is built for structured "
                                              f"pruning; {self.method} fine-tunes on labels")

    def needs_labels(self) -> bool:
        return self.fine_tune_on == LABELS

    def needs_dataset(self) -> str | None:
        if self.fine_tune_on == ORIGINAL_OUTPUTS:
            return ("pruning fine-tunes the model to match the original's outputs on a dataset's samples (its train "
                    "and validation splits; labels are not needed)")
        return "pruning fine-tunes the model on a labelled dataset (its train and validation splits)"

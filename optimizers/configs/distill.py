"""Settings of the distill recipe (standard library only: the web validates forms with it).

A student learns to imitate the uploaded model (the teacher, only ever run forward) on a labelled dataset,
through the shared fine-tuning loop (the fields inherited from `FineTuneSettings`). The student is either a
built-in architecture with its own settings, or a thinner/shallower copy of the teacher initialized from the
teacher's own weights. Distillation gains are often the size of the noise between seeds, so the recipe can
train the same student without the teacher, on as many seeds, and report both.
"""
import dataclasses
import json
from typing import ClassVar

from optimizers.configs.architectures import ARCHITECTURE_CONFIGS, ArchitectureConfig, parse_architecture
from optimizers.configs.base import RecipeConfig, setting
from optimizers.configs.finetune import FineTuneSettings
from optimizers.errors import ConfigError

BUILTIN, THINNER_COPY, UPLOADED = "builtin", "thinner_copy", "uploaded"
STUDENTS = (BUILTIN, THINNER_COPY, UPLOADED)
STUDENT_ROLE = "student"
SAME_DEPTH, HALF_DEPTH = "same", "half"
SOFT_TARGETS, MSE, COSINE = "soft_targets", "mse", "cosine"


@dataclasses.dataclass(frozen=True)
class DistillConfig(RecipeConfig, FineTuneSettings):
    recipe: ClassVar[str] = "distill"
    variant_field: ClassVar[str] = "student"

    # A student starts from scratch (or from a slice of the teacher): it wants a training rate and more epochs.
    learning_rate: float = setting(
        3e-3, "Step size at the start of training the student: about 3e-3 for AdamW, 3e-2 for SGD.",
        min=1e-7, max=1.0)
    epochs: int = setting(20, "Passes over the train split for each student (at most; early stopping may end "
                              "sooner).", min=1, max=500)
    early_stopping_patience: int = setting(
        0, "Stop after this many epochs without a lower validation loss; the best epoch is kept either way. "
           "0 (the default here) trains every student for all its epochs, so students compare on equal budgets.",
        min=0, max=100)
    student: str = setting(
        BUILTIN,
        "builtin: a built-in architecture with the settings below (student_architecture, student_config). "
        "thinner_copy: the teacher's own architecture made narrower (student_width) and shallower "
        "(student_depth), started from the teacher's strongest neurons and channels and its every other "
        "block: it converges far faster than a random start. Needs a teacher uploaded as a state dict with "
        "its architecture. uploaded: another of your models (student_model), uploaded as a state dict with its "
        "architecture, trained from its own weights.",
        choices=STUDENTS)
    student_model: int = setting(
        0, "uploaded: the id of your model to train as the student (a state dict with its architecture; the "
           "number in its page's address).", min=0, max=2**53)
    student_architecture: str = setting(
        "mlp", "builtin: the student's architecture.", choices=tuple(ARCHITECTURE_CONFIGS))
    student_config: str = setting(
        "{}", 'builtin: the student\'s settings as JSON, e.g. {"hidden": [32]} for an MLP; settings left out '
              "take the architecture's defaults. The student must take the teacher's input and give as many "
              "outputs as the teacher has classes.")
    student_width: float = setting(
        0.5, "thinner_copy: fraction of each hidden layer's neurons (MLP) or each stage's channels (small CNN) "
             "the student keeps, the ones with the largest weights. A Hugging Face folder's student keeps the "
             "teacher's width.", min=0.05, max=1.0)
    student_depth: str = setting(
        HALF_DEPTH, "thinner_copy: half keeps every other block of each ResNet stage and every other Transformer "
                    "layer (the way DistilBERT took every other layer of BERT); same keeps them all.",
        choices=(SAME_DEPTH, HALF_DEPTH))
    loss: str = setting(
        SOFT_TARGETS, "soft_targets: the teacher's class probabilities softened by temperature, blended with the "
                      "labels by alpha (for classifiers; without labels the student learns from the teacher alone "
                      "and is judged by its agreement with the teacher's top class). mse or cosine: match the "
                      "teacher's outputs themselves, for models whose outputs are embeddings; judged by the mean "
                      "cosine similarity to the teacher's outputs, no labels needed.",
        choices=(SOFT_TARGETS, MSE, COSINE))
    temperature: float = setting(
        4.0, "Softens the teacher's and the student's outputs before they are compared: higher shows the "
             "student more of how the teacher ranks the wrong classes.", min=1.0, max=20.0)
    alpha: float = setting(
        0.7, "Weight of imitating the teacher; 1 - alpha weighs the dataset's own labels.", min=0.0, max=1.0)
    hint_weight: float = setting(
        0.0, "Weight of the feature (hint) loss, as in FitNets: the features the student hands its classifier, "
             "through a learned projection, match the teacher's. 0 turns it off. It needs to see inside both "
             "models: a teacher uploaded as a state dict with its architecture, and a student with a Linear "
             "classifier.", min=0.0, max=100.0)
    seeds: int = setting(
        1, "Students trained, each from its own seed; with more than one the report gives mean and standard "
           "deviation, and the best one is kept.", min=1, max=5)
    compare_without_teacher: bool = setting(
        True, "Also train the same student on the labels alone, with the same budget and seeds, so the report "
              "says whether the teacher helped more than the noise between seeds.")

    def check_combination(self) -> None:
        if self.student == BUILTIN:
            self.student_spec()
        if self.student == UPLOADED and not self.student_model:
            raise ConfigError("student_model", "choose the model to train as the student: give its id")

    def check_model(self, *, input_shape: tuple[int, ...], input_dtype: str, output_shape: list[int] | None) -> None:
        """A built-in student must take the teacher's input and give as many outputs as the teacher."""
        if self.student != BUILTIN:
            return
        spec = self.student_spec()
        refusal = spec.input_refusal(tuple(input_shape), input_dtype)
        if refusal:
            raise ConfigError("student_config", f"the student does not take the teacher's input: {refusal}")
        classes = output_shape[-1] if output_shape else None
        if classes is not None and getattr(spec, "num_classes", classes) != classes:
            raise ConfigError("student_config", f"num_classes: the teacher gives {classes} outputs and the student "
                                                f"{spec.num_classes}; set num_classes to {classes}")

    def referenced_models(self) -> dict[str, int]:
        return {STUDENT_ROLE: self.student_model} if self.student == UPLOADED else {}

    def student_spec(self) -> ArchitectureConfig:
        """The built-in student's settings, parsed; ConfigError names student_config when they are wrong."""
        try:
            settings = json.loads(self.student_config)
        except ValueError as error:
            raise ConfigError("student_config", f"must be a JSON object of settings; {error}") from None
        try:
            return parse_architecture(self.student_architecture, settings)
        except ConfigError as error:
            raise ConfigError("student_config", f"{error.field}: {error.message}") from None

    def needs_labels(self) -> bool:
        return False  # without labels the student learns from the teacher alone

    def needs_dataset(self) -> str | None:
        return "distillation trains the student on a dataset's samples (its train and validation splits)"

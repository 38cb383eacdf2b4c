"""Settings of the shared fine-tuning loop (standard library only: the web validates forms with it).

Recipes that train (prune, distill) inherit `FineTuneSettings` so the same fields, defaults and help text
appear in every form; `optimizers.training.loop.fit` takes any of them. `TrainSettings` is the same loop with
defaults for training from scratch (the bench's reference models).
"""
import dataclasses

from optimizers.configs.base import Settings, setting

OPTIMIZERS = ("adamw", "sgd")
LR_SCHEDULES = ("cosine", "step", "constant")
# The step schedule multiplies the rate by STEP_GAMMA at these fractions of the epochs (the classic ResNet recipe).
STEP_MILESTONES = (0.5, 0.75)
STEP_GAMMA = 0.1


@dataclasses.dataclass(frozen=True)
class FineTuneSettings(Settings):
    """How a model is fine-tuned on the dataset's train split, judged on its validation split."""

    optimizer: str = setting(
        "adamw",
        "adamw: adapts each weight's step size, forgiving of the learning rate (the usual choice). "
        "sgd: plain momentum SGD, often a little better after pruning with a tuned learning rate.",
        choices=OPTIMIZERS,
    )
    learning_rate: float = setting(
        1e-3,
        "Step size at the start of training. Fine-tuning a trained model wants small steps: "
        "about 1e-3 for AdamW, 1e-2 for SGD.",
        min=1e-7, max=1.0,
    )
    momentum: float = setting(0.9, "SGD momentum (ignored by AdamW).", min=0.0, max=0.999)
    weight_decay: float = setting(
        1e-4, "Pulls weights towards zero each step; a mild guard against overfitting small datasets.",
        min=0.0, max=1.0,
    )
    lr_schedule: str = setting(
        "cosine",
        "How the learning rate changes over the epochs. cosine: decays smoothly to zero. "
        "step: x0.1 at half and at three quarters of the epochs. constant: never changes.",
        choices=LR_SCHEDULES,
    )
    epochs: int = setting(5, "Passes over the train split (at most; early stopping may end sooner).", min=1, max=500)
    batch_size: int = setting(64, "Samples per training step.", min=1, max=4096)
    early_stopping_patience: int = setting(
        3,
        "Stop after this many epochs without a lower validation loss; the best epoch is kept either way. "
        "0 turns early stopping off.",
        min=0, max=100,
    )
    seed: int = setting(0, "Seeds shuffling and dropout, so a rerun with the same settings trains the same.",
                        min=0, max=2**31 - 1)
    ranks: int = setting(
        1,
        "Data-parallel replicas (DDP) that share each batch: one per GPU over NCCL, or CPU processes over gloo. "
        "1 trains in one process; 0 takes every device the worker gives the job. The report shows samples/s "
        "at 1..ranks and the scaling efficiency.",
        min=0, max=64,
    )

    def to_train_settings(self) -> "FineTuneSettings":
        """Only the fine-tuning fields, as a plain FineTuneSettings (drops a subclass's recipe fields)."""
        names = [spec.name for spec in dataclasses.fields(FineTuneSettings)]
        return FineTuneSettings(**{name: getattr(self, name) for name in names})


def finetune_field(name: str, default):
    """FineTuneSettings' field `name` (same help and limits) with another default, for subclasses."""
    metadata = FineTuneSettings.__dataclass_fields__[name].metadata
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class TrainSettings(FineTuneSettings):
    """Training from scratch: a larger step, more epochs and no early stopping (the bench's reference models)."""

    learning_rate: float = finetune_field("learning_rate", 3e-3)
    epochs: int = finetune_field("epochs", 10)
    early_stopping_patience: int = finetune_field("early_stopping_patience", 0)

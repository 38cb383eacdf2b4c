"""Records in a given state, made through the services where a service exists."""
from django.core.files.base import ContentFile

from webapp.models import Artifact, Experiment, UploadedModel


def ready_model(owner, name="mlp") -> UploadedModel:
    model = UploadedModel.objects.create(
        owner=owner, name=name, sha256="0" * 64, size_bytes=10, input_shape=[1, 64], input_dtype="float32",
        status=UploadedModel.Status.READY, format="torchscript", params=100,
        info={"format": "torchscript", "params": 100, "output_shape": [1, 10], "latency_ms_p50": 0.1,
              "threads": 1, "recipes": {"quantize": {"applicable": True, "reason": ""}}},
    )
    model.file.save("upload", ContentFile(b"PK\x05\x06" + b"\0" * 18))
    return model


def experiment_with_artifact(owner) -> tuple[Experiment, Artifact]:
    experiment = Experiment.objects.create(owner=owner, model=ready_model(owner), recipe="quantize",
                                           status=Experiment.Status.SUCCEEDED)
    artifact = Artifact(experiment=experiment, name="report.json", size_bytes=2, sha256="1" * 64)
    artifact.file.save("report.json", ContentFile(b"{}"))
    return experiment, artifact


def finished_experiment(owner, recipe: str, backend: str, extras: dict) -> Experiment:
    """A succeeded experiment whose report holds only `extras` and a parameter count (for the report's pages)."""
    summary = {"before": {"params": 10}, "after": {"params": 10}, "backend": backend, "notes": [], "extras": extras}
    return Experiment.objects.create(owner=owner, model=ready_model(owner), recipe=recipe,
                                     status=Experiment.Status.SUCCEEDED, summary=summary, progress=1.0)

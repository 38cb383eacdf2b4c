"""How large a distill student will be, from its settings alone, before anything runs (the model page's form)."""
from typing import Any

from optimizers.configs.architectures import parse_architecture
from optimizers.configs.distill import BUILTIN, HALF_DEPTH, THINNER_COPY, DistillConfig
from optimizers.configs.thinner import thinner_settings
from optimizers.errors import ConfigError
from webapp.models import UploadedModel


def student_size_for(*, user, teacher: UploadedModel, config: DistillConfig) -> dict[str, Any]:
    """{"student_params", "teacher_params", "ratio", "student"} or, when the size cannot be known yet,
    {"reason"}: the student's parameters counted from its architecture settings, or the uploaded student's."""
    if config.student == BUILTIN:
        spec = config.student_spec()
        return _sized(spec.parameter_count(), teacher, f"a built-in {spec.architecture}")
    if config.student == THINNER_COPY:
        architecture = teacher.architecture or {}
        if not architecture.get("name"):
            return {"reason": "a thinner copy needs a teacher uploaded as a state dict with its architecture"}
        try:
            settings, _ = thinner_settings(architecture["name"], architecture.get("config") or {},
                                           config.student_width, config.student_depth == HALF_DEPTH)
            count = parse_architecture(architecture["name"], settings).parameter_count()
        except ConfigError as error:
            return {"reason": f"the copy's settings do not hold: {error}"}
        return _sized(count, teacher, f"a thinner {architecture['name']}")
    student = UploadedModel.objects.filter(owner=user, pk=config.student_model).first()
    if student is None:
        return {"reason": f"you have no model #{config.student_model}"}
    if student.params is None:
        return {"reason": f"model #{student.pk} is {student.status}: its size is known once it is inspected"}
    return _sized(student.params, teacher, f"your model “{student.name}”")


def _sized(count: int, teacher: UploadedModel, student: str) -> dict[str, Any]:
    ratio = count / teacher.params if teacher.params else None
    return {"student": student, "student_params": count, "teacher_params": teacher.params,
            "ratio": round(ratio, 4) if ratio is not None else None}

"""The distill form's student size: counted from the settings before anything runs, and only for the owner."""
import pytest

from optimizers.configs.architectures import MLPConfig
from optimizers.configs.distill import DistillConfig
from tests.factories import ready_model

pytestmark = pytest.mark.django_db
TEACHER = {"name": "mlp", "config": {"hidden": [128, 64]}}


def _form(**changes) -> dict:
    """The distill fieldset as the browser sends it: every field, at its default unless changed."""
    data = {}
    for spec in DistillConfig.describe_fields():
        value = changes.get(spec["name"], spec.get("default"))
        if isinstance(value, list | tuple):
            value = ",".join(str(item) for item in value)
        if isinstance(value, bool):
            if not value:
                continue  # an unticked checkbox is not sent
            value = "on"
        data[f"distill-{spec['name']}"] = "" if value is None else str(value)
    return data


def _teacher(owner, **fields):
    teacher = ready_model(owner, name="teacher")
    for name, value in {"format": "safetensors", "architecture": TEACHER,
                        "params": MLPConfig(hidden=(128, 64)).parameter_count(), **fields}.items():
        setattr(teacher, name, value)
    teacher.save()
    return teacher


def _size(client, teacher, **changes):
    return client.get(f"/models/{teacher.pk}/student-size/", _form(**changes))


def test_a_builtin_student_is_counted_against_the_teacher(alice, client):
    teacher = _teacher(alice)
    client.force_login(alice)
    body = _size(client, teacher, student="builtin", student_architecture="mlp",
                 student_config='{"hidden": [16]}').json()
    expected = 64 * 16 + 16 + 16 * 10 + 10
    assert body == {"student": "a built-in mlp", "student_params": expected, "teacher_params": teacher.params,
                    "ratio": round(expected / teacher.params, 4)}


def test_a_thinner_copy_is_counted_from_the_teachers_architecture(alice, client):
    teacher = _teacher(alice)
    client.force_login(alice)
    body = _size(client, teacher, student="thinner_copy", student_width=0.25).json()
    assert body["student_params"] == MLPConfig(hidden=(32, 16)).parameter_count()
    no_architecture = _teacher(alice, architecture={}, format="torchscript")
    assert "needs a teacher uploaded as a state dict" in _size(client, no_architecture,
                                                               student="thinner_copy").json()["reason"]


def test_an_uploaded_student_is_only_ever_the_users_own(alice, bob, client):
    teacher = _teacher(alice)
    bobs = ready_model(bob, name="bobs-student")
    client.force_login(alice)
    mine = ready_model(alice, name="small")
    assert _size(client, teacher, student="uploaded", student_model=mine.pk).json()["student_params"] == 100
    assert _size(client, teacher, student="uploaded", student_model=bobs.pk).json() == {
        "reason": f"you have no model #{bobs.pk}"}  # exactly as a model that does not exist


def test_bad_settings_are_named_and_another_users_teacher_is_not_found(alice, bob, client):
    teacher = _teacher(alice)
    client.force_login(alice)
    response = _size(client, teacher, student="builtin", student_config="{not json")
    assert response.status_code == 400 and "student_config" in response.json()["error"]
    client.force_login(bob)
    assert _size(client, teacher).status_code == 404


def test_it_needs_login(client, alice):
    response = _size(client, _teacher(alice))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")

"""The distill recipe's settings: checked before anything is queued, the student's settings too."""
import pytest

from optimizers.configs import RECIPE_CONFIGS, ConfigError, parse_config
from optimizers.configs.distill import DistillConfig


def test_defaults_are_valid_and_need_a_labelled_dataset():
    config = parse_config("distill", {})
    assert RECIPE_CONFIGS["distill"] is DistillConfig and config.student == "builtin"
    assert not config.needs_labels() and "dataset's samples" in config.needs_dataset()
    assert config.student_spec().architecture == "mlp"


@pytest.mark.parametrize(("values", "field", "problem"), [
    ({"student_config": "{hidden: 3"}, "student_config", "must be a JSON object of settings"),
    ({"student_config": '{"hidden": [0]}'}, "student_config", "hidden: must be at least 1"),
    ({"student_config": '{"depth": 3}'}, "student_config", "depth: unknown setting"),
    ({"student_architecture": "vit"}, "student_architecture", "must be one of"),
    ({"student": "teacher"}, "student", "must be one of builtin, thinner_copy, uploaded"),
    ({"student": "uploaded"}, "student_model", "give its id"),
    ({"seeds": 9}, "seeds", "at most 5"),
    ({"alpha": 1.5}, "alpha", "at most 1"),
])
def test_bad_settings_name_their_field(values, field, problem):
    with pytest.raises(ConfigError, match=problem) as raised:
        parse_config("distill", values)
    assert raised.value.field == field


def test_a_thinner_copy_ignores_the_builtin_student_settings():
    config = parse_config("distill", {"student": "thinner_copy", "student_config": "not json"})
    assert (config.student, config.student_width, config.student_depth) == ("thinner_copy", 0.5, "half")


def test_an_uploaded_student_is_a_referenced_model():
    assert parse_config("distill", {"student": "uploaded", "student_model": 7}).referenced_models() == {"student": 7}
    assert parse_config("distill", {"student_model": 7}).referenced_models() == {}  # a builtin student names none


def test_a_builtin_student_must_fit_the_teachers_input_and_outputs():
    fits = {"input_shape": (1, 64), "input_dtype": "float32", "output_shape": [1, 10]}
    parse_config("distill", {"student_config": '{"hidden": [16]}'}).check_model(**fits)
    with pytest.raises(ConfigError, match="num_classes: the teacher gives 10 outputs and the student 3") as raised:
        parse_config("distill", {"student_config": '{"num_classes": 3}'}).check_model(**fits)
    assert raised.value.field == "student_config"
    with pytest.raises(ConfigError, match="does not take the teacher's input: in_channels and image_size"):
        parse_config("distill", {"student_architecture": "small_cnn"}).check_model(**fits)
    parse_config("distill", {"student": "thinner_copy"}).check_model(**fits)  # copies fit by construction

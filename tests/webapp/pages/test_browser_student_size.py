"""The distill form in Chromium: the student's size and its share of the teacher's, updated as settings change."""
import pytest

from optimizers.configs.architectures import MLPConfig
from tests.browser import log_in, save_screenshot
from tests.factories import ready_model

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def teacher(carol):
    model = ready_model(carol, name="teacher")
    model.format, model.architecture = "safetensors", {"name": "mlp", "config": {"hidden": [128, 64]}}
    model.params = MLPConfig(hidden=(128, 64)).parameter_count()
    model.save()
    return model


def test_the_student_size_follows_the_settings(teacher, browser_page, web_server, tmp_path):
    log_in(browser_page, web_server)
    browser_page.goto(f"{web_server}/models/{teacher.pk}/")
    browser_page.select_option("#recipe", "distill")
    size = browser_page.locator("#student-size")
    size.filter(has_text="parameters").wait_for()
    assert "Student: a built-in mlp" in size.inner_text()
    browser_page.fill("[name=distill-student_config]", '{"hidden": [16]}')
    size.filter(has_text="1,210 parameters").wait_for()  # 64x16+16 + 16x10+10
    assert "0.070× the teacher's 17,226 (7.0%)" in size.inner_text()
    browser_page.select_option("[name=distill-student]", "thinner_copy")
    browser_page.fill("[name=distill-student_width]", "0.5")
    size.filter(has_text="a thinner mlp").wait_for()
    assert f"{MLPConfig(hidden=(64, 32)).parameter_count():,} parameters" in size.inner_text()
    browser_page.select_option("[name=distill-student]", "builtin")
    browser_page.fill("[name=distill-student_config]", '{"hidden": [')
    size.filter(has_text="student_config").wait_for()
    browser_page.fill("[name=distill-student_config]", '{"hidden": [16]}')
    size.filter(has_text="1,210 parameters").wait_for()
    save_screenshot(browser_page, "distill-form.png", tmp_path)

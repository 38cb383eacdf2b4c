"""HTML forms. A recipe's form is built from its config type, so the form and the API share one validation."""
from django import forms

from optimizers.configs import RECIPE_CONFIGS


def recipe_config_form(recipe: str, data=None) -> forms.Form:
    """A form whose fields mirror the recipe config's fields, defaults and help text."""
    form = forms.Form(data=data, prefix="config")
    for spec in RECIPE_CONFIGS[recipe].describe_fields():
        form.fields[spec["name"]] = _form_field(spec)
    return form


def _form_field(spec: dict) -> forms.Field:
    common = {"label": spec["name"].replace("_", " "), "help_text": spec.get("help", ""),
              "initial": spec.get("default")}
    if spec.get("choices"):
        return forms.ChoiceField(choices=[(c, c) for c in spec["choices"]], **common)
    if spec["type"] == "boolean":
        return forms.BooleanField(required=False, **common)
    if spec["type"] == "integer":
        return forms.IntegerField(**common)
    if spec["type"] == "number":
        return forms.FloatField(**common)
    return forms.CharField(**common)

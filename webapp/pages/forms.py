"""HTML forms. A recipe's form is built from its config type, so the form and the API share one validation."""
from django import forms

from optimizers.configs import RECIPE_CONFIGS
from optimizers.zoo import ARCHITECTURE_CONFIGS


def settings_form(config_type, *, prefix: str, data=None, initial: dict | None = None) -> forms.Form:
    """A form whose fields mirror a config type's fields, defaults and help text; `initial` fills it with saved
    settings (a re-run's), lists written as the form takes them."""
    filled = {key: ",".join(map(str, value)) if isinstance(value, list | tuple) else value
              for key, value in (initial or {}).items()}
    form = forms.Form(data=data, prefix=prefix, initial=filled)
    for spec in config_type.describe_fields():
        form.fields[spec["name"]] = _form_field(spec)
    return form


def recipe_config_form(recipe: str, data=None, initial: dict | None = None) -> forms.Form:
    return settings_form(RECIPE_CONFIGS[recipe], prefix=recipe, data=data, initial=initial)


def recipe_forms(chosen: str | None = None, data=None, initial: dict | None = None) -> list[tuple[str, forms.Form]]:
    """One settings form per recipe; only the chosen one is bound to the posted data, or filled with `initial`."""
    return [(name, recipe_config_form(name, data, initial) if name == chosen else recipe_config_form(name))
            for name in sorted(RECIPE_CONFIGS)]


def architecture_forms() -> list[tuple[str, forms.Form]]:
    """One settings form per built-in architecture, for the state-dict upload."""
    return [(name, settings_form(config_type, prefix=f"arch-{name}"))
            for name, config_type in sorted(ARCHITECTURE_CONFIGS.items())]


def _form_field(spec: dict) -> forms.Field:
    common = {"label": spec["name"].replace("_", " "), "help_text": spec.get("help", ""),
              "initial": spec.get("default")}
    if spec.get("choices") and spec["type"] == "integer":  # a few sizes to pick from (group_size): still a number
        return forms.TypedChoiceField(choices=[(c, c) for c in spec["choices"]], coerce=int, **common)
    if spec.get("choices"):
        return forms.ChoiceField(choices=[(c, c) for c in spec["choices"]], **common)
    if spec["type"] == "boolean":
        return forms.BooleanField(required=False, **common)
    limits = {"min_value": spec.get("min"), "max_value": spec.get("max")}
    if spec["type"] == "integer":
        return forms.IntegerField(**common, **limits)
    if spec["type"] == "number":
        return forms.FloatField(**common, **limits)
    if isinstance(spec.get("default"), list | tuple):
        common["initial"] = ",".join(str(v) for v in spec["default"])
    return forms.CharField(**common)


def mark_invalid(form: forms.Form) -> None:
    """Highlight the inputs of the fields with errors (Django adds aria-invalid and aria-describedby itself)."""
    for name in form.errors:
        if name in form.fields:
            form.fields[name].widget.attrs["class"] = "invalid"

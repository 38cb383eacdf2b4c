"""How a refused form marks its inputs: the error next to each (its id is the input's id plus "_error", as Django
names a form field's own error), the input pointing at it, and the summary of what belongs to no input."""
from django import template
from django.utils.html import format_html, format_html_join

register = template.Library()


@register.simple_tag
def invalid_attrs(refusal, name: str, input_id: str = ""):
    """Attributes for an input the refusal names: highlighted, invalid, described by its error."""
    if not refusal or not refusal.errors.get(name):
        return ""
    return format_html(' class="invalid" aria-invalid="true" aria-describedby="{}_error"', input_id or name)


@register.simple_tag
def field_error(refusal, name: str, input_id: str = ""):
    if not refusal or not refusal.errors.get(name):
        return ""
    return format_html('<p class="field-error" id="{}_error">{}</p>', input_id or name,
                       " ".join(refusal.errors[name]))


@register.simple_tag
def form_summary(refusal, more_field_errors: bool = False):
    """The refusal's summary at the top of its form, announced as it appears."""
    lines = refusal.summary_lines(more_field_errors) if refusal else []
    if not lines:
        return ""
    return format_html('<div class="form-summary" role="alert">{}</div>',
                       format_html_join("", "<p>{}</p>", ((line,) for line in lines)))


@register.simple_tag
def refused_value(refusal, name: str, default=""):
    """What was posted for `name` when the form was refused, else `default` (the saved or initial value)."""
    return refusal.values.get(name, "") if refusal else default

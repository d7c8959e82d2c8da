"""Template helpers for the console: `{% icon "name" %}` draws an icon from static/core/icons.svg."""

from django import template
from django.templatetags.static import static
from django.utils.html import format_html

register = template.Library()


@register.simple_tag
def icon(name: str, extra_class: str = "") -> str:
    """A decorative SVG icon (hidden from screen readers: the text next to it says what it means)."""
    return format_html(
        '<svg class="icon {}" aria-hidden="true" focusable="false"><use href="{}#{}"></use></svg>',
        extra_class,
        static("core/icons.svg"),
        name,
    )

"""Server-rendered SVG charts for Insight: bars, stacked bars, lines and a heatmap.

No JavaScript and no CDN: each helper returns one accessible `<svg role="img">` (an aria-label,
a `<title>` and a `<desc>` summarising the numbers, and a `<title>` on every bar or cell for
pointer users). Colours come from the Okabe–Ito palette, which stays distinct for the common
colour-vision deficiencies, and nothing relies on colour alone: stacked series also differ by
fill pattern, bars carry their values, lines differ by marker shape, the heatmap prints its
numbers. Styling is SVG presentation attributes (`fill=`, `font-size=`) and CSS classes only,
never `style=`, so a strict Content-Security-Policy needs no exception.

All text is escaped here; the result is marked safe for templates.
"""

import math
import re
from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Okabe & Ito (2008), "Color Universal Design": blue, orange, bluish green, reddish purple,
# sky blue, vermillion, yellow, black.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
# One fill pattern per series (drawn over the colour), so series differ in greyscale print too.
_PATTERNS = (
    "",
    '<path d="M-2,2 l4,-4 M0,8 l8,-8 M6,10 l4,-4" stroke="#000" stroke-opacity=".45" stroke-width="1.4"/>',
    '<circle cx="4" cy="4" r="1.7" fill="#000" fill-opacity=".45"/>',
    '<path d="M0,4 h8" stroke="#000" stroke-opacity=".45" stroke-width="1.6"/>',
    '<path d="M-2,6 l4,4 M0,0 l8,8 M6,-2 l4,4" stroke="#fff" stroke-opacity=".8" stroke-width="1.4"/>',
    '<path d="M4,0 v8" stroke="#000" stroke-opacity=".45" stroke-width="1.6"/>',
    '<path d="M0,0 l8,8 M8,0 l-8,8" stroke="#000" stroke-opacity=".45" stroke-width="1.1"/>',
    '<path d="M0,4 h8 M4,0 v8" stroke="#fff" stroke-opacity=".8" stroke-width="1.1"/>',
)
# Marker shapes for line charts, centred on (0, 0).
_MARKERS = (
    '<circle r="4"/>',
    '<rect x="-3.5" y="-3.5" width="7" height="7"/>',
    '<path d="M0,-5 L4.5,3.5 L-4.5,3.5 Z"/>',
    '<path d="M0,-5 L5,0 L0,5 L-5,0 Z"/>',
)
# Sequential blues for the heatmap (light to dark); the number in each cell carries the value.
_HEAT = ("#f7fbff", "#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c")

WIDTH = 720
_LEGEND_PER_ROW = 3
FONT = 11


def _id(chart_id: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]", "-", chart_id)


def _nice_max(value: int) -> int:
    """A round axis top at or above `value` (1, 2, 5 × 10ⁿ steps over 4 ticks)."""
    if value <= 4:
        return 4
    raw = value / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    for step in (1, 2, 5, 10):
        if step * magnitude >= raw:
            return int(step * magnitude * 4)
    return int(10 * magnitude * 4)  # pragma: no cover (the loop always returns)


def _open(cid: str, title: str, description: str, width: int, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        f'aria-describedby="{cid}-desc" font-family="DejaVu Sans, sans-serif" font-size="{FONT}">',
        f'<title id="{cid}-title">{escape(title)}</title>',
        f'<desc id="{cid}-desc">{escape(description)}</desc>',
    ]


def _patterns(cid: str, count: int) -> str:
    defs = []
    for k in range(count):
        colour = PALETTE[k % len(PALETTE)]
        # Past eight series the colours repeat: shift the pattern so no two series look alike.
        overlay = _PATTERNS[(k + k // len(PALETTE)) % len(_PATTERNS)]
        defs.append(
            f'<pattern id="{cid}-p{k}" patternUnits="userSpaceOnUse" width="8" height="8">'
            f'<rect width="8" height="8" fill="{colour}"/>{overlay}</pattern>'
        )
    return f"<defs>{''.join(defs)}</defs>"


def _legend(cid: str, names: Sequence[str], *, top: int, patterned: bool = True, markers: bool = False) -> str:
    parts = [f'<g class="chart-legend" transform="translate(0,{top})">']
    per_row = _LEGEND_PER_ROW
    for k, name in enumerate(names):
        x = 44 + (k % per_row) * 224
        y = (k // per_row) * 18
        if markers:
            colour = PALETTE[k % len(PALETTE)]
            parts.append(
                f'<g transform="translate({x + 7},{y + 6})" fill="{colour}" stroke="#1b1f24" stroke-width=".6">'
                f"{_MARKERS[k % len(_MARKERS)]}</g>"
            )
        else:
            fill = f"url(#{cid}-p{k})" if patterned else PALETTE[0]
            parts.append(
                f'<rect x="{x}" y="{y}" width="14" height="12" fill="{fill}" stroke="#1b1f24" stroke-width=".6"/>'
            )
        parts.append(f'<text x="{x + 19}" y="{y + 10}" class="chart-label">{escape(name)}</text>')
    parts.append("</g>")
    return "".join(parts)


def _legend_height(count: int) -> int:
    return 0 if count == 0 else 18 * math.ceil(count / _LEGEND_PER_ROW) + 6


def _y_axis(parts: list[str], *, top_value: int, left: int, right: int, top: int, bottom: int) -> None:
    for tick in range(5):
        value = top_value * tick // 4
        y = bottom - (bottom - top) * tick / 4
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" class="chart-grid" stroke="#d0d7de"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="chart-axis">{value}</text>')


def _x_labels(parts: list[str], labels: Sequence[str], *, x_of, bottom: int) -> None:
    every = max(1, math.ceil(len(labels) / 12))
    for i, label in enumerate(labels):
        if i % every:
            continue
        x = x_of(i)
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="end" class="chart-axis" '
            f'transform="rotate(-35 {x:.1f} {bottom + 14})">{escape(label)}</text>'
        )


def _empty(parts: list[str], width: int, height: int) -> None:
    parts.append(
        f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="chart-empty">Nothing in this range.</text>'
    )


def stacked_bar_chart(
    *, chart_id: str, title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]]
) -> SafeString:
    """Vertical bars per label (time bucket), one patterned segment per series, the total above each bar."""
    cid = _id(chart_id)
    totals = [sum(values[i] for _, values in series) for i in range(len(labels))]
    grand = sum(totals)
    peak = max(totals, default=0)
    description = f"{grand} in all over {len(labels)} periods"
    if peak:
        description += f"; highest {peak} ({labels[totals.index(peak)]})"
    description += ". " + "; ".join(f"{name}: {sum(values)}" for name, values in series)
    left, right, top, bottom = 44, WIDTH - 12, 18, 230
    height = bottom + 60 + _legend_height(len(series))
    parts = _open(cid, title, description, WIDTH, height)
    parts.append(_patterns(cid, len(series)))
    top_value = _nice_max(peak)
    _y_axis(parts, top_value=top_value, left=left, right=right, top=top, bottom=bottom)
    band = (right - left) / max(1, len(labels))
    bar = max(2.0, band * 0.72)

    def x_of(i: int) -> float:
        return left + band * i + band / 2

    for i, label in enumerate(labels):
        y = float(bottom)
        x = x_of(i) - bar / 2
        for k, (name, values) in enumerate(series):
            value = values[i]
            if not value:
                continue
            h = (bottom - top) * value / top_value
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="url(#{cid}-p{k})" '
                f'stroke="#fff" stroke-width=".5" class="chart-bar"><title>{escape(label)}: {escape(name)} {value}</title></rect>'
            )
        if totals[i]:
            parts.append(
                f'<text x="{x_of(i):.1f}" y="{y - 3:.1f}" text-anchor="middle" class="chart-value" '
                f'font-size="{9 if band < 24 else FONT}">{totals[i]}</text>'
            )
    parts.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#57606a"/>')
    _x_labels(parts, labels, x_of=x_of, bottom=bottom)
    if not grand:
        _empty(parts, WIDTH, bottom)
    parts.append(_legend(cid, [name for name, _ in series], top=bottom + 58))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every text above is escaped)


def bar_chart(*, chart_id: str, title: str, rows: Sequence[tuple[str, int]], unit: str = "") -> SafeString:
    """Horizontal bars, one per row (label, value), the value printed at the end of each bar."""
    cid = _id(chart_id)
    label_width, left, right = 200, 208, WIDTH - 50
    row_height = 22
    height = max(1, len(rows)) * row_height + 16
    total = sum(value for _, value in rows)
    description = "; ".join(f"{label}: {value}{unit}" for label, value in rows) or "Nothing in this range."
    parts = _open(cid, title, description, WIDTH, height)
    peak = max((value for _, value in rows), default=0) or 1
    for i, (label, value) in enumerate(rows):
        y = 8 + i * row_height
        short = label if len(label) <= 30 else label[:29] + "…"
        parts.append(
            f'<text x="{label_width}" y="{y + 14}" text-anchor="end" class="chart-label">{escape(short)}</text>'
        )
        width = (right - left) * value / peak
        if value:
            parts.append(
                f'<rect x="{left}" y="{y + 3}" width="{max(width, 1.5):.1f}" height="{row_height - 6}" '
                f'fill="{PALETTE[0]}" class="chart-bar"><title>{escape(label)}: {value}{escape(unit)}</title></rect>'
            )
        parts.append(f'<text x="{left + width + 5:.1f}" y="{y + 14}" class="chart-value">{value}{escape(unit)}</text>')
    if not rows or not total:
        _empty(parts, WIDTH, height)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308


def line_chart(
    *, chart_id: str, title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]]
) -> SafeString:
    """One line per series with a distinct marker shape; non-zero points print their value."""
    cid = _id(chart_id)
    peak = max((max(values, default=0) for _, values in series), default=0)
    description = f"Over {len(labels)} periods. " + "; ".join(
        f"{name}: {sum(values)} in all" for name, values in series
    )
    left, right, top, bottom = 44, WIDTH - 12, 18, 230
    height = bottom + 60 + _legend_height(len(series))
    parts = _open(cid, title, description, WIDTH, height)
    top_value = _nice_max(peak)
    _y_axis(parts, top_value=top_value, left=left, right=right, top=top, bottom=bottom)
    band = (right - left) / max(1, len(labels))

    def x_of(i: int) -> float:
        return left + band * i + band / 2

    def y_of(value: int) -> float:
        return bottom - (bottom - top) * value / top_value

    for k, (name, values) in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        points = " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in enumerate(values))
        dash = ' stroke-dasharray="6 3"' if k % 2 else ""
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{dash} class="chart-line"/>'
        )
        for i, value in enumerate(values):
            parts.append(
                f'<g transform="translate({x_of(i):.1f},{y_of(value):.1f})" fill="{colour}" stroke="#1b1f24" '
                f'stroke-width=".6" class="chart-point">{_MARKERS[k % len(_MARKERS)]}'
                f"<title>{escape(labels[i])}: {escape(name)} {value}</title></g>"
            )
            if value:
                parts.append(
                    f'<text x="{x_of(i):.1f}" y="{y_of(value) - 8:.1f}" text-anchor="middle" class="chart-value" '
                    f'font-size="9">{value}</text>'
                )
    parts.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#57606a"/>')
    _x_labels(parts, labels, x_of=x_of, bottom=bottom)
    if not peak:
        _empty(parts, WIDTH, bottom)
    parts.append(_legend(cid, [name for name, _ in series], top=bottom + 58, markers=True))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308


def heatmap(
    *, chart_id: str, title: str, row_labels: Sequence[str], col_labels: Sequence[str], cells: Sequence[Sequence[int]]
) -> SafeString:
    """A grid of counts (rows × columns), shaded light to dark, every non-zero count printed in its cell."""
    cid = _id(chart_id)
    left, top, cell_w, cell_h = 40, 22, 28, 26
    width = left + cell_w * len(col_labels) + 8
    height = top + cell_h * len(row_labels) + 8
    peak = max((max(row, default=0) for row in cells), default=0)
    busiest = ""
    if peak:
        r, c = next((r, c) for r, row in enumerate(cells) for c, v in enumerate(row) if v == peak)
        busiest = f"; busiest {row_labels[r]} {col_labels[c]} with {peak}"
    description = f"{sum(map(sum, cells))} in all{busiest}."
    parts = _open(cid, title, description, width, height)
    for c, label in enumerate(col_labels):
        parts.append(
            f'<text x="{left + c * cell_w + cell_w / 2}" y="{top - 7}" text-anchor="middle" class="chart-axis" '
            f'font-size="9">{escape(label)}</text>'
        )
    for r, label in enumerate(row_labels):
        y = top + r * cell_h
        parts.append(
            f'<text x="{left - 6}" y="{y + cell_h / 2 + 4}" text-anchor="end" class="chart-axis">{escape(label)}</text>'
        )
        for c, value in enumerate(cells[r]):
            shade = 0 if not value else 1 + min(len(_HEAT) - 2, int((len(_HEAT) - 1) * value / (peak + 1)))
            x = left + c * cell_w
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell_w - 1}" height="{cell_h - 1}" fill="{_HEAT[shade]}" '
                f'class="chart-cell"><title>{escape(label)} {escape(col_labels[c])}: {value}</title></rect>'
            )
            if value:
                ink = "#ffffff" if shade >= 4 else "#1b1f24"
                parts.append(
                    f'<text x="{x + cell_w / 2 - 0.5}" y="{y + cell_h / 2 + 4}" text-anchor="middle" fill="{ink}" '
                    f'class="chart-value" font-size="10">{value}</text>'
                )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308

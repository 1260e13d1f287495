"""A small summary object: text for terminals, HTML for notebooks, never printing by itself."""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Summary:
    """A titled set of key/value lines and optional tables.

    ``tables`` is a list of ``(title, header, rows)`` with rows as sequences of strings.
    """

    title: str
    lines: tuple[tuple[str, str], ...] = ()
    tables: tuple[tuple[str, tuple[str, ...], tuple[tuple[str, ...], ...]], ...] = field(default=())

    def as_text(self) -> str:
        out = [self.title, "=" * len(self.title)]
        width = max((len(k) for k, _ in self.lines), default=0)
        out += [f"{k:<{width}} : {v}" for k, v in self.lines]
        for title, header, rows in self.tables:
            cols = [header, *rows]
            widths = [max(len(str(r[i])) for r in cols) for i in range(len(header))]
            out += [
                "",
                title,
                "  ".join(h.ljust(w) for h, w in zip(header, widths)),
                "  ".join("-" * w for w in widths),
            ]
            out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.as_text()

    def _repr_html_(self) -> str:
        """An HTML table of the lines (and one table per extra table); all text escaped."""
        esc = html.escape
        cell = "border:1px solid #ccd;padding:2px 8px;text-align:left;vertical-align:top"
        parts = [f"<div class='seegaan-summary'><h4 style='margin:4px 0'>{esc(self.title)}</h4>", "<table>"]
        parts += [f"<tr><th style='{cell}'>{esc(k)}</th><td style='{cell}'>{esc(v)}</td></tr>" for k, v in self.lines]
        parts.append("</table>")
        for title, header, rows in self.tables:
            parts.append(f"<p><b>{esc(title)}</b></p><table><tr>")
            parts += [f"<th style='{cell}'>{esc(h)}</th>" for h in header]
            parts.append("</tr>")
            for r in rows:
                parts.append("<tr>" + "".join(f"<td style='{cell}'>{esc(str(c))}</td>" for c in r) + "</tr>")
            parts.append("</table>")
        parts.append("</div>")
        return "".join(parts)

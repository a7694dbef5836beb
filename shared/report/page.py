"""A self-contained HTML report page: one file with inline CSS and base64-embedded PNGs, no scripts, no links.

Every app's `report.html` (and the core demo) is built with `Page`: add sections, text, metric tables,
comparison tables, figures and image grids in reading order, then `save` it atomically. The page opens from
a run directory on any machine, offline, and prints cleanly (A4 or letter; figures and tables are not split
across pages). Published numbers shown beside measured ones are set apart in grey italics and never
highlighted, so a reader cannot mistake a paper's figure for ours.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from shared.atomic import atomic_path
from shared.report import figures

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

CSS = """
:root { --ink:#1d2125; --muted:#6b7178; --rule:#d5d9de; --accent:#0b5cad; --soft:#f5f7f9; }
* { box-sizing:border-box; }
body { font:15px/1.55 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; color:var(--ink);
  max-width:1000px; margin:0 auto; padding:32px 28px 48px; background:#fff; }
header { border-bottom:2px solid var(--ink); padding-bottom:12px; margin-bottom:20px; }
h1 { font-size:26px; margin:0 0 4px; line-height:1.25; }
.subtitle { color:var(--muted); font-size:16px; margin:0 0 6px; }
.stamp { color:var(--muted); font-size:12.5px; }
h2 { font-size:19px; margin:34px 0 10px; padding-bottom:4px; border-bottom:1px solid var(--rule); }
h3 { font-size:16px; margin:22px 0 8px; }
p { margin:8px 0; } ul { margin:8px 0; padding-left:22px; }
code, pre { font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; }
code { background:var(--soft); padding:1px 4px; border-radius:3px; }
pre { background:var(--soft); border:1px solid var(--rule); border-radius:4px; padding:10px 12px;
  overflow-x:auto; white-space:pre-wrap; word-break:break-word; }
pre code { background:none; padding:0; }
nav.toc { background:var(--soft); border:1px solid var(--rule); border-radius:4px; padding:8px 14px;
  font-size:14px; }
nav.toc ol { margin:4px 0; padding-left:22px; } nav.toc a { color:var(--accent); text-decoration:none; }
table { border-collapse:collapse; margin:6px 0; font-size:13.5px; font-variant-numeric:tabular-nums; }
th, td { padding:4px 12px; text-align:left; vertical-align:top; }
thead th { border-bottom:1.5px solid var(--ink); font-weight:600; }
tbody tr { border-bottom:1px solid #eceef0; } tbody tr:last-child { border-bottom:1.5px solid var(--ink); }
td.num, th.num { text-align:right; }
table.metrics td:first-child { color:var(--muted); padding-right:24px; }
table.metrics td + td { text-align:right; }
tr.muted td { color:var(--muted); font-style:italic; }
tr.muted-start td { border-top:1px dashed var(--muted); }
td.best { font-weight:700; }
.tablewrap { overflow-x:auto; margin:12px 0; }
.caption, figcaption { color:var(--muted); font-size:13px; margin:4px 0 0; }
.caption b, figcaption b { color:var(--ink); }
figure { margin:16px 0; }
figure img { max-width:100%; height:auto; display:block; }
img.pixels { image-rendering:pixelated; image-rendering:crisp-edges; }
table.imgs td, table.imgs th { padding:3px; text-align:center; font-size:12px; color:var(--muted);
  border:none; vertical-align:middle; }
table.imgs tbody tr { border:none; }
table.imgs img { display:block; margin:0 auto 2px; }
.callout { border-left:4px solid var(--accent); background:var(--soft); padding:8px 12px; margin:12px 0; }
.callout.warning { border-left-color:#c77c00; background:#fff8ec; }
footer { margin-top:40px; padding-top:10px; border-top:1px solid var(--rule); color:var(--muted);
  font-size:13px; }
details summary { cursor:pointer; color:var(--accent); }
@media print {
  body { max-width:none; padding:0; font-size:11pt; }
  nav.toc { display:none; }
  figure, .tablewrap, pre, .callout { break-inside:avoid; }
  h2, h3 { break-after:avoid; }
  details::details-content { content-visibility:visible; display:block; }
  a { color:inherit; }
}
"""


def format_value(v) -> str:
    """Plain text for one cell: ints with thousands separators, floats to 4 significant digits (scientific
    when tiny or huge), bools as yes/no, None/NaN as an en dash. numpy and 0-d torch scalars are unwrapped."""
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        v = v.item()
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        a = abs(v)
        if a == 0:
            return "0"
        if a >= 1e6 or a < 1e-3:
            return f"{v:.3e}"
        if a >= 1000:
            return f"{v:,.1f}"
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(format_value(x) for x in v)
    return str(v)


def _is_number(v) -> bool:
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        v = v.item()
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)


def _inline(text: str) -> str:
    # Escape first, then turn `code` and **bold** into tags; code spans are cut out so ** in them stays.
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for part in parts:
        if len(part) > 2 and part.startswith("`") and part.endswith("`"):
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(part)))
    return "".join(out)


def _data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class Page:
    """An HTML report built in reading order. Every adder returns the page, so calls chain.

    >>> page = Page("Molecules: CharRNN on MOSES", subtitle="run tiny-01")
    >>> page.section("Metrics").metrics({"valid": 0.97, "unique@10k": 0.999})
    >>> page.save("runs/molecules/tiny-01/report.html")
    """

    def __init__(self, title: str, subtitle: str | None = None):
        self.title, self.subtitle = str(title), subtitle
        self._body: list[str] = []
        self._sections: list[tuple[str, str]] = []  # (anchor id, title) for the table of contents
        self._footer = ""
        self._n_fig = self._n_tab = 0

    def _add(self, fragment: str) -> Page:
        self._body.append(fragment)
        return self

    def section(self, title: str, level: int = 2) -> Page:
        """A heading; level 2 headings are listed in the contents box (shown when there are three or more)."""
        if level not in (2, 3):
            raise ValueError(f"section level must be 2 or 3, got {level}")
        if level == 3:
            return self._add(f"<h3>{html.escape(title)}</h3>")
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"
        anchor = f"s{len(self._sections) + 1}-{slug}"[:60]
        self._sections.append((anchor, title))
        return self._add(f'<h2 id="{anchor}">{html.escape(title)}</h2>')

    def text(self, text: str) -> Page:
        """Plain text with a little markdown: blank lines split paragraphs, lines starting '- ' form a list,
        **bold** and `code` inline. Everything else is escaped, so any string is safe here."""
        for block in re.split(r"\n\s*\n", str(text).strip()):
            lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
            if lines and all(ln.startswith(("- ", "* ")) for ln in lines):
                items = "".join(f"<li>{_inline(ln[2:])}</li>" for ln in lines)
                self._add(f"<ul>{items}</ul>")
            elif lines:
                self._add(f"<p>{_inline(' '.join(lines))}</p>")
        return self

    def callout(self, text: str, kind: str = "note") -> Page:
        """A boxed remark (kind 'note' or 'warning'), e.g. 'tiny budget: not comparable to the paper'."""
        if kind not in ("note", "warning"):
            raise ValueError(f"callout kind must be 'note' or 'warning', got {kind!r}")
        return self._add(f'<div class="callout {kind}">{_inline(text)}</div>')

    def code(self, text: str) -> Page:
        """Preformatted text (a command, a config, a log excerpt), escaped."""
        return self._add(f"<pre><code>{html.escape(str(text))}</code></pre>")

    def _caption(self, kind: str, caption: str | None, tag: str = "p", note: str = "") -> str:
        # Numbered "Figure n." / "Table n." captions; `note` is trusted HTML appended after the caption text.
        if kind == "Table":
            self._n_tab += 1
            n = self._n_tab
        else:
            self._n_fig += 1
            n = self._n_fig
        body = f"<b>{kind} {n}.</b> {_inline(caption) if caption else ''} {note}".rstrip()
        cls = "" if tag == "figcaption" else ' class="caption"'
        return f"<{tag}{cls}>{body}</{tag}>"

    def metrics(self, values: Mapping[str, object], title: str | None = None) -> Page:
        """A two-column key/value table of scalar results, numbers formatted by `format_value`."""
        rows = "".join(
            f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(format_value(v))}</td></tr>" for k, v in values.items()
        )
        head = f"<h3>{html.escape(title)}</h3>" if title else ""
        table = f'<table class="metrics"><tbody>{rows}</tbody></table>'
        return self._add(f'{head}<div class="tablewrap">{table}</div>')

    def table(
        self,
        rows,
        columns: Iterable[str] | None = None,
        caption: str | None = None,
        highlight: Mapping[str, str] | None = None,
        source_key: str = "source",
        muted: Iterable[str] = ("published",),
        formats: Mapping[str, str | Callable[[object], str]] | None = None,
    ) -> Page:
        """A comparison table from a list of dicts or a pandas DataFrame (a named index becomes a column).

        `highlight` maps column -> "max" or "min": the best *measured* value in the column is bold (ties too).
        Rows whose `source_key` value is in `muted` (default "published") are grey italic, set off by a dashed
        rule, and never bold: they are other people's numbers. `formats` maps column -> format string such as
        "{:.1%}" or a callable; other cells use `format_value`.
        """
        records = self._records(rows)
        columns = list(columns) if columns is not None else list(dict.fromkeys(k for r in records for k in r))
        highlight, formats, muted = dict(highlight or {}), dict(formats or {}), {str(m) for m in muted}
        for col, how in highlight.items():
            if col not in columns or how not in ("max", "min"):
                raise ValueError(
                    f"highlight {col!r}: {how!r} needs a shown column and 'max' or 'min'; columns are {columns}"
                )
        is_muted = [str(r.get(source_key)) in muted for r in records]
        best = {}
        for col, how in highlight.items():
            vals = [float(r[col]) for r, m in zip(records, is_muted) if not m and _is_number(r.get(col))]
            if vals:
                best[col] = max(vals) if how == "max" else min(vals)
        numeric = {c for c in columns if any(_is_number(r.get(c)) for r in records)}

        def cell(r: dict, col: str, m: bool) -> str:
            v = r.get(col)
            fmt = formats.get(col)
            if fmt is None or v is None:
                text = format_value(v)
            else:
                text = fmt(v) if callable(fmt) else fmt.format(v)
            cls = ["num"] if col in numeric else []
            if not m and col in best and _is_number(v) and float(v) == best[col]:
                cls.append("best")
            attr = f' class="{" ".join(cls)}"' if cls else ""
            return f"<td{attr}>{html.escape(text)}</td>"

        num_th = '<th class="num">'
        head = "".join(f"{num_th if c in numeric else '<th>'}{html.escape(str(c))}</th>" for c in columns)
        body = []
        for i, (r, m) in enumerate(zip(records, is_muted)):
            cls = "muted muted-start" if m and i > 0 and not is_muted[i - 1] else "muted" if m else ""
            tr = f'<tr class="{cls}">' if cls else "<tr>"
            body.append(tr + "".join(cell(r, c, m) for c in columns) + "</tr>")
        notes = []
        if best:
            better = ", ".join(
                f"{html.escape(c)}: {'higher' if h == 'max' else 'lower'} is better" for c, h in highlight.items()
            )
            notes.append(f"Bold: best measured value per column ({better}).")
        if any(is_muted):
            notes.append("Grey italic rows: published figures, not measured in this run.")
        cap = self._caption("Table", caption, note=" ".join(notes))
        return self._add(
            f'<div class="tablewrap"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>{cap}</div>"
        )

    @staticmethod
    def _records(rows) -> list[dict]:
        if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a DataFrame; pandas is not imported here
            named_index = any(n is not None for n in rows.index.names)
            records = (rows.reset_index() if named_index else rows).to_dict(orient="records")
        else:
            records = [dict(r) for r in rows]
        if not records:
            raise ValueError("table needs at least one row")
        return records

    def figure(self, fig, caption: str | None = None, width: int | None = None) -> Page:
        """Embed a matplotlib Figure (rendered to PNG at 110 dpi, then closed), PNG bytes, an image array
        (H, W[, C]) or the path of a PNG file. `width` caps the displayed width in CSS pixels."""
        if isinstance(fig, (str, os.PathLike)):
            fig = Path(fig).read_bytes()
        data = fig if isinstance(fig, bytes) else figures.png_bytes(fig)
        if not data.startswith(_PNG_MAGIC):
            raise ValueError("figure bytes are not a PNG; pass a matplotlib Figure, an array or PNG bytes")
        return self._img(_data_uri(data), caption, width)

    def svg(self, svg_text: str, caption: str | None = None, width: int | None = None) -> Page:
        """Embed an SVG drawing (e.g. RDKit molecule grids) as an image, so any scripts in it cannot run."""
        svg_text = re.sub(r"^\s*<\?xml[^>]*\?>", "", str(svg_text))
        if "<svg" not in svg_text:
            raise ValueError("svg(): text does not contain an <svg> element")
        return self._img(_data_uri(svg_text.encode("utf-8"), "image/svg+xml"), caption, width)

    def _img(self, uri: str, caption: str | None, width: int | None, cls: str = "") -> Page:
        style = f' style="max-width:{int(width)}px"' if width else ""
        alt = html.escape(caption or "figure", quote=True)
        klass = f' class="{cls}"' if cls else ""
        cap = self._caption("Figure", caption, tag="figcaption")
        return self._add(f'<figure><img{klass} src="{uri}" alt="{alt}"{style}>{cap}</figure>')

    def image_grid(
        self,
        images,
        nrow: int | None = None,
        caption: str | None = None,
        labels: Iterable[str] | None = None,
        row_labels: Iterable[str] | None = None,
        scale: int | None = None,
    ) -> Page:
        """Sample images (N, C, H, W) or (N, H, W) in [0, 1], `nrow` per row, nearest-neighbour upscaled.

        Without labels the grid is one PNG (`figures.image_grid_array`). With `labels` (one per image) or
        `row_labels` (one per row, e.g. the training step) each cell is its own image in an HTML table, so the
        text stays sharp and selectable.
        """
        labels = None if labels is None else [str(s) for s in labels]
        row_labels = None if row_labels is None else [str(s) for s in row_labels]
        if labels is None and row_labels is None:
            grid = figures.image_grid_array(images, nrow=nrow, scale=scale, pad=2)
            return self._img(_data_uri(figures.png_bytes(grid)), caption, None, cls="pixels")
        n = len(images)
        nrow = nrow or math.ceil(math.sqrt(n))
        n_rows = math.ceil(n / nrow)
        if labels is not None and len(labels) != n:
            raise ValueError(f"image_grid: {len(labels)} labels for {n} images; give one label per image")
        if row_labels is not None and len(row_labels) != n_rows:
            raise ValueError(f"image_grid: {len(row_labels)} row labels for {n_rows} rows of {nrow}")
        trs = []
        for r in range(n_rows):
            tds = [f"<th>{html.escape(row_labels[r])}</th>"] if row_labels else []
            for i in range(r * nrow, min(n, (r + 1) * nrow)):
                png = figures.png_bytes(figures.image_grid_array(images[i : i + 1], scale=scale, pad=0))
                under = html.escape(labels[i]) if labels else ""
                tds.append(f'<td><img class="pixels" src="{_data_uri(png)}" alt="sample {i}">{under}</td>')
            trs.append("<tr>" + "".join(tds) + "</tr>")
        cap = self._caption("Figure", caption, tag="figcaption")
        return self._add(f'<figure><table class="imgs"><tbody>{"".join(trs)}</tbody></table>{cap}</figure>')

    def provenance(
        self, command: str | Iterable[str] | None = None, config=None, extra: Mapping[str, object] | None = None
    ) -> Page:
        """The "how this was made" footer: the command line (a string or argv list; default `sys.argv`),
        the config (dict or dataclass) as JSON in a collapsible block, and any `extra` key/values."""
        if command is None:
            command = [Path(sys.executable).name, *sys.argv]
        if not isinstance(command, str):
            command = shlex.join(str(c) for c in command)
        parts = ["<h3>How this was made</h3>", f"<pre><code>{html.escape(command)}</code></pre>"]
        for k, v in (extra or {}).items():
            parts.append(f"<div>{html.escape(str(k))}: {html.escape(format_value(v))}</div>")
        if config is not None:
            if dataclasses.is_dataclass(config) and not isinstance(config, type):
                config = dataclasses.asdict(config)
            text = json.dumps(config, indent=2, default=str)
            parts.append(
                f"<details><summary>Configuration</summary><pre><code>{html.escape(text)}</code></pre></details>"
            )
        self._footer = "".join(parts)
        return self

    def render(self) -> str:
        """The whole document as one HTML string."""
        stamp = datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()
        sub = f'<p class="subtitle">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        toc = ""
        if len(self._sections) >= 3:
            items = "".join(f'<li><a href="#{a}">{html.escape(t)}</a></li>' for a, t in self._sections)
            toc = f'<nav class="toc"><b>Contents</b><ol>{items}</ol></nav>'
        title = html.escape(self.title)
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f'<header><h1>{title}</h1>{sub}<div class="stamp">Generated {html.escape(stamp)} by genlab</div>'
            f"</header>\n{toc}\n"
            + "\n".join(self._body)
            + f"\n<footer>{self._footer}<div>Generated {html.escape(stamp)}.</div></footer>\n"
            "</body>\n</html>\n"
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Render and write atomically (a reader never sees half a page); returns the path."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(self.render(), encoding="utf-8")
        return path

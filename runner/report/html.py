"""The report document as one self-contained HTML page: inline CSS and SVG, no network.

Chapters link to their files relative to the page, so the page works wherever the output
directory is copied. Every value is escaped; key figures carry `data-metric` attributes so a
test (or a script) can find them without parsing prose.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Final

from runner.report.plot import clock, requests_plot

__all__ = ["render", "render_cost"]

_EXIT: Final = {
    0: ("done", "ok"),
    1: ("some segments failed", "bad"),
    2: ("usage error", "bad"),
    3: ("stopped early — run again to resume", "warn"),
    4: ("state locked", "bad"),
}

_CSS: Final = """
:root{--fg:#1d2430;--mute:#5b6675;--line:#dde2e8;--bg:#f6f7f9;--card:#fff;--accent:#2f6fdb;
--ok:#1f8a4c;--warn:#b7791f;--bad:#c53030}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:1140px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 10px;
border-bottom:2px solid var(--line);padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.sub{color:var(--mute);margin:0 0 16px}
.status{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600}
.status.ok{background:var(--ok)}.status.warn{background:var(--warn)}.status.bad{background:var(--bad)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.card .label{color:var(--mute);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:24px;font-weight:650;margin-top:2px}
.card .extra{color:var(--mute);font-size:12px}
table{width:100%;border-collapse:collapse;background:var(--card);border:1px solid var(--line)}
th,td{padding:6px 9px;border-bottom:1px solid var(--line);text-align:left;vertical-align:middle}
th{background:#eef1f5;font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:var(--mute)}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr:nth-child(even) td{background:#fafbfc}
audio{height:30px;width:240px;vertical-align:middle}
code{font-size:12px;color:var(--mute)}
.empty{color:var(--mute);font-style:italic}
.plot{background:var(--card);border:1px solid var(--line);border-radius:8px}
.plot .frame{fill:none;stroke:var(--line)}.plot .grid{stroke:#eceff3}
.plot .bar{fill:var(--accent)}.plot .tick{font-size:11px;fill:var(--mute)}
.plot .limit{stroke:var(--bad);stroke-width:2;stroke-dasharray:7 5}
.plot .limit-label{font-size:12px;fill:var(--bad);font-weight:600}
.bad{color:var(--bad)}.warn{color:var(--warn)}
ul.notes li{color:var(--mute)}
"""

#: Pause every other player when one starts: one voice at a time.
_JS: Final = (
    "document.addEventListener('play',e=>{for(const a of document.querySelectorAll('audio'))"
    "if(a!==e.target)a.pause()},true);"
)


def render(document: Mapping[str, object]) -> str:
    manifest, run = _map(document.get("manifest")), _map(document.get("run"))
    name = str(manifest.get("name", "tts-runner"))
    body = [
        _header(name, manifest, run),
        _cards(_map(document.get("totals")), _list(document.get("suspicious"))),
        _chapters(_list(document.get("chapters")), _map(document.get("loudness"))),
        _requests(_list(document.get("accounts"))),
        _accounts(_list(document.get("accounts"))),
        _segments("Failed segments", _list(document.get("failed")), "none failed"),
        _segments("Deferred to the next run", _list(document.get("deferred")), "nothing deferred"),
        _warnings(document.get("warnings")),
        _suspicious(_list(document.get("suspicious"))),
        _notes(document.get("notes"), document.get("generated_at")),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(name)} — run report</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main><script>{_JS}</script></body></html>\n"
    )


def render_cost(costs: Mapping[str, object]) -> str:
    """`12.5 credits, 3 yuan`; `0` when nothing was spent."""
    parts = [
        f"{_amount(value)} {unit}".strip()
        for unit, value in costs.items()
        if isinstance(value, (int, float)) and value
    ]
    return ", ".join(parts) or "0"


# -- sections ------------------------------------------------------------------------------------


def _header(name: str, manifest: Mapping[str, object], run: Mapping[str, object]) -> str:
    code = run.get("exit_code")
    meaning, tone = _EXIT.get(code if isinstance(code, int) else -1, ("unknown", "warn"))
    stopped = str(run.get("stopped") or "")
    return (
        f"<header><h1>{escape(name)}</h1>"
        f'<p class="sub">Run {escape(str(run.get("id") or "–"))} of '
        f"<code>{escape(str(manifest.get('path', '')))}</code>, started "
        f"{escape(_when(run.get('started_at')))}, took {_elapsed(run.get('elapsed'))} · "
        f'<span class="status {tone}" data-metric="exit_code" data-value="{code}">'
        f"exit {code}: {escape(meaning)}</span>"
        f"{'<br>' + escape(stopped) if stopped else ''}</p></header>"
    )


def _cards(totals: Mapping[str, object], suspicious: Sequence[Mapping[str, object]]) -> str:
    segments, done = _int(totals.get("segments")), _int(totals.get("done"))
    fresh = _int(totals.get("synthesized"))
    duration = float(str(totals.get("duration") or 0))
    cost_run, cost_total = _map(totals.get("cost_run")), _map(totals.get("cost_total"))
    cards = [
        (
            "segments",
            "Segments",
            f"{segments:,}",
            f"{done:,} done, {_int(totals.get('chars')):,} chars; {fresh:,} new this run",
        ),
        (
            "duration",
            "Audio",
            clock(duration),
            f"{_int(totals.get('chapters_complete'))} of {_int(totals.get('chapters'))} chapters",
        ),
        ("cost", "Cost this run", render_cost(cost_run), f"book so far: {render_cost(cost_total)}"),
        ("requests", "Requests", f"{_int(totals.get('requests')):,}", "this run, all kinds"),
        (
            "retries",
            "Retries",
            f"{_int(totals.get('retries')):,}",
            f"{_int(totals.get('rate_limited'))} rate-limited (429)",
        ),
        (
            "failed",
            "Failed",
            f"{_int(totals.get('failed')):,}",
            f"{_int(totals.get('remaining')) - _int(totals.get('failed')):,} left for next run",
        ),
        ("suspicious", "Suspicious", f"{len(suspicious):,}", "segments to listen to"),
    ]
    return (
        '<section class="cards">'
        + "".join(
            f'<div class="card"><div class="label">{label}</div>'
            f'<div class="value" data-metric="{metric}">{escape(value)}</div>'
            f'<div class="extra">{escape(extra)}</div></div>'
            for metric, label, value, extra in cards
        )
        + "</section>"
    )


def _chapters(chapters: Sequence[Mapping[str, object]], loudness: Mapping[str, object]) -> str:
    not_measured = escape(str(loudness.get("note") or "not measured"))
    rows = []
    for c in chapters:
        href = c.get("href")
        listen = (
            f'<audio controls preload="none" src="{escape(str(href))}"></audio> '
            f'<a href="{escape(str(href))}">{escape(str(c.get("file")))}</a>'
            if href
            else '<span class="empty">incomplete</span>'
        )
        lufs = c.get("loudness_lufs")
        rows.append(
            [
                escape(str(c.get("id"))),
                escape(str(c.get("title"))),
                escape(str(c.get("voice"))),
                _num(_seconds(c.get("duration")) if c.get("duration") is not None else "–"),
                _num(f"{_int(c.get('done'))}/{_int(c.get('segments'))}"),
                _num(f"{lufs} LUFS" if lufs is not None else not_measured),
                listen,
            ]
        )
    headers = ["id", "title", "voice", "duration", "segments", "loudness", "listen"]
    return "<h2>Chapters</h2>" + _table(headers, rows, "no chapters")


def _requests(accounts: Sequence[Mapping[str, object]]) -> str:
    out = ["<h2>Requests over time</h2>"]
    for account in accounts:
        line = _map(account.get("timeline"))
        limit, peak = line.get("limit"), _int(line.get("peak_in_window"))
        window = float(str(line.get("window") or 1))
        verdict = ""
        if isinstance(limit, int):
            tone = "bad" if peak > limit else "ok"
            verdict = f' — <span class="{tone}">plan allows {limit}</span>'
        title = (
            f"<h3>{escape(str(account.get('name')))} <code>{escape(str(account.get('kind')))}"
            f" · {escape(str(account.get('plan')))}</code></h3>"
        )
        if not _int(line.get("starts")):
            out.append(title + '<p class="empty">no requests in this run</p>')
            continue
        out.append(
            title
            + f'<p class="sub">{_starts(_int(line.get("starts")))} plotted; busiest {window:g} s: '
            f'<b data-metric="peak">{peak}</b> {"start" if peak == 1 else "starts"}{verdict}. '
            f"Bars: starts per {window:g} s window{_grouped(line)}.</p>"
            + requests_plot(line, f"request starts of {account.get('name')}")
        )
    return "".join(out) if accounts else out[0] + '<p class="empty">no accounts</p>'


def _accounts(accounts: Sequence[Mapping[str, object]]) -> str:
    rows = []
    for a in accounts:
        retries = _map(a.get("retries"))
        unit = str(a.get("cost_unit") or "")
        rows.append(
            [
                escape(str(a.get("name"))),
                *(
                    _num(f"{_int(a.get(k)):,}")
                    for k in ("requests", "synthesized", "chars", "rate_limited", "polls")
                ),
                escape(", ".join(f"{k}: {v}" for k, v in sorted(retries.items())) or "–"),
                *(_num(f"{_int(a.get(k)):,}") for k in ("re_requests", "deferred", "failed")),
                _num(escape(render_cost({unit: a.get("cost")}))),
                _num(escape(render_cost({unit: a.get("cost_total")}))),
                f'<span class="bad">{escape(str(a.get("stopped")))}</span>'
                if a.get("stopped")
                else "",
            ]
        )
    headers = [
        "account", "requests", "synthesised", "chars", "429s", "polls", "retries by cause",
        "re-requests", "deferred", "failed", "cost (run)", "cost (book)", "stopped",
    ]  # fmt: skip
    return "<h2>Accounts</h2>" + _table(headers, rows, "no accounts")


def _segments(title: str, items: Sequence[Mapping[str, object]], empty: str) -> str:
    rows = [
        [
            f"<code>{escape(str(s.get('key'))[:12])}</code>",
            escape(str(s.get("chapter"))),
            escape(str(s.get("account"))),
            _num(str(_int(s.get("attempts")))),
            escape(str(s.get("text"))),
            f'<span class="bad">{escape(str(s.get("reason")))}</span>',
        ]
        for s in items
    ]
    headers = ["segment", "chapter", "account", "attempts", "text", "reason"]
    return f"<h2>{escape(title)} ({len(items)})</h2>" + _table(headers, rows, empty)


def _warnings(warnings: object) -> str:
    items = [str(w) for w in warnings] if isinstance(warnings, list) else []
    inner = "".join(f"<li>{escape(w)}</li>" for w in items)
    return f"<h2>Warnings ({len(items)})</h2>" + (
        f"<ul>{inner}</ul>" if items else '<p class="empty">no warnings</p>'
    )


def _suspicious(items: Sequence[Mapping[str, object]]) -> str:
    rows = [
        [
            f"<code>{escape(str(s.get('key'))[:12])}</code>",
            escape(str(s.get("chapter"))),
            escape(str(s.get("voice"))),
            _num(f"{s.get('seconds_per_char')} s/char"),
            _num("–" if s.get("rms_dbfs") is None else f"{s.get('rms_dbfs')} dBFS"),
            escape(str(s.get("text"))),
            '<span class="warn">' + escape("; ".join(_strings(s.get("problems")))) + "</span>",
        ]
        for s in items
    ]
    headers = ["segment", "chapter", "voice", "pace", "level", "text", "why"]
    return f"<h2>Suspicious segments ({len(items)})</h2>" + _table(
        headers, rows, "nothing suspicious: every segment's pace and level look like speech"
    )


def _notes(notes: object, generated: object) -> str:
    items = "".join(f"<li>{escape(n)}</li>" for n in _strings(notes))
    return (
        f'<h2>Notes</h2><ul class="notes">{items}<li>Generated {escape(_when(generated))} by '
        "tts-runner; the same figures are in report.json beside this page.</li></ul>"
    )


# -- helpers --------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="empty">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class _Num(str):
    """A cell's HTML that is a figure: aligned right."""

    __slots__ = ()


def _cell(content: str) -> str:
    return f'<td class="n">{content}</td>' if isinstance(content, _Num) else f"<td>{content}</td>"


def _num(text: str) -> str:
    return _Num(text)


def _starts(count: int) -> str:
    return f"{count:,} start" if count == 1 else f"{count:,} starts"


def _grouped(line: Mapping[str, object]) -> str:
    group = _int(line.get("group"))
    return f" (each bar: the busiest of {group} windows)" if group > 1 else ""


def _map(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Mapping[str, object]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _amount(value: float) -> str:
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def _seconds(value: object) -> str:
    return clock(float(value)) if isinstance(value, (int, float)) else "–"


def _elapsed(value: object) -> str:
    if isinstance(value, (int, float)) and value < 60:
        return f"{value:.1f} s"
    return _seconds(value)


def _when(value: object) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    return datetime.fromtimestamp(value).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")

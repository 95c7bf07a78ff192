"""The run report: `report.json` (the figures) and `report.html` (the same, for people).

`collect` gathers a plain document from the state and the run's counters, `audit` listens for
suspicious segments in the cached audio, `timeline` and `plot` draw request starts against the
plan, `html` renders the page, and `write` puts both files beside the chapters.
"""

from __future__ import annotations

from runner.report.write import HTML_NAME, JSON_NAME, ReportFiles, write_report

__all__ = ["HTML_NAME", "JSON_NAME", "ReportFiles", "write_report"]

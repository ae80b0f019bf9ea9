"""HTML win-rate reports: ``build_report_data`` (pure data), then one self-contained page.

    from gammaride.reports import write_report
    path, data = write_report("gammaride.duckdb", "report.html")
"""

from gammaride.reports.data import ReportFilters, build_report_data
from gammaride.reports.render import headline_text, render_report, show, write_report

__all__ = [
    "ReportFilters",
    "build_report_data",
    "headline_text",
    "render_report",
    "show",
    "write_report",
]

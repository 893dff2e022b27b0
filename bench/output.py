"""A report's files: report.json (the record), report.md (what a person reads) and the PNG plots."""

from __future__ import annotations

import warnings
from pathlib import Path

from bench.plots import write_plots
from bench.report import markdown
from bench.results import REPORT_MD, Report, write_json


def save_report(report: Report, out_dir: Path) -> list[Path]:
    """Write report.json, report.md and the PNG plots into `out_dir`; return the paths written.

    Without matplotlib the JSON and Markdown are still written (with a warning): the numbers matter
    more than the pictures.
    """
    written = [write_json(report, out_dir)]
    md_path = out_dir / REPORT_MD
    md_path.write_text(markdown(report))
    written.append(md_path)
    try:
        return written + write_plots(report, out_dir)
    except ModuleNotFoundError as error:  # pragma: no cover - matplotlib is in the bench extra
        if not (error.name or "").startswith("matplotlib"):
            raise
        warnings.warn(f"no plots: {error} (install the bench extra: pip install 'lockstore[bench]')", stacklevel=2)
        return written

"""The run report: ``RUN/report/report.md`` and PNGs, from what ``supernet run`` wrote.

    supernet report runs/quickstart        # or: from supernet.report import write_report

One concept per module:

- :mod:`~supernet.report.rundir`: :func:`load_run` reads a run directory (:class:`RunData`,
  :class:`TargetRun`), :class:`ReportError` names what is missing.
- :mod:`~supernet.report.tables`: Markdown tables (selected model per target, top-N archs, header).
- :mod:`~supernet.report.analysis`: error analysis, choice entropy, parameter importances, compute.
- :mod:`~supernet.report.plots`: figures (reusing the search's and the training's plot helpers).
- :mod:`~supernet.report.diagram`: a drawing of an architecture.
- :mod:`~supernet.report.markdown`: :func:`write_report` assembles it all.
- :mod:`~supernet.report.cli`: ``supernet report RUN_DIR``.

``notebooks/explore_run.ipynb`` redraws the figures with these functions.
"""

from supernet.report.markdown import render_report, write_report
from supernet.report.rundir import ReportError, RunData, TargetRun, load_run, load_study_records

__all__ = ["write_report", "render_report", "load_run", "load_study_records", "RunData", "TargetRun", "ReportError"]

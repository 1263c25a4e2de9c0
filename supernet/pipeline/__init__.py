"""`supernet run`: the whole chain, corpus to report, with per-stage hashes, skipping and resuming.

- :mod:`~supernet.pipeline.config`: :class:`RunConfig` (``configs/run/*.yaml``) and
  :func:`resolve_run`, which builds and checks every stage's config before anything runs.
- :mod:`~supernet.pipeline.ledger`: ``RUN/stages.json`` (hashes, status, times) and the
  skip / resume / rerun decision.
- :mod:`~supernet.pipeline.stages`: each stage as a call of the stage's own library function.
- :mod:`~supernet.pipeline.scoring`: test-set scores of the exported models (``RUN/eval/``).
- :mod:`~supernet.pipeline.run`: :func:`plan` and :func:`run_pipeline`.
- :mod:`~supernet.pipeline.cli`: the ``supernet run`` command.
"""

import importlib

# Importing the package is cheap (the CLI imports it for --help); names load on first use.
_WHERE = {"RunConfig": "config", "ResolvedRun": "config", "load_run_config": "config", "resolve_run": "config",
          "Ledger": "ledger", "stage_hash": "ledger", "Stage": "run", "plan": "run", "run_pipeline": "run",
          "RunSummary": "run", "StageError": "stages"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"supernet.pipeline.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'supernet.pipeline' has no attribute {name!r}")

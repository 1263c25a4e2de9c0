"""Supernet training internals; the public entry point is :mod:`supernet.train`.

- ``config``      FitConfig and the strategies' settings
- ``data``        endless, resumable training batches; the held-out alpha split
- ``paths``       PathSampler: which archs a step runs (seeded by step)
- ``losses``      in-place distillation, expected cost under alpha
- ``strategies``  sandwich / spos / progressive / darts / gdas steps
- ``module``      SupernetModule (LightningModule)
- ``derive``      archs from alpha: argmax, exact best under a budget (DP)
- ``alpha``       alpha entropy, history plot
- ``run``         fit(), load_supernet()
"""

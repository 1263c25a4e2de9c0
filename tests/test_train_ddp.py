"""Supernet training under Lightning DDP: 2 CPU processes (gloo, spawn) agree on weights and alpha.

Every rank draws the same paths (seeded by step) and its own data; DDP averages the gradients
of the weights a path used (find_unused_parameters), the module averages alpha's gradients.
After a few steps both ranks must hold bit-identical weights and alpha. ~30-60 s on 2 cores
(the gdas case, which also checks alpha's averaged gradients, is marked slow).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


class DumpRankState(L.Callback):
    """Each rank writes its weights, alpha and the batches it saw (spawned ranks share nothing else)."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.first_ids: list[str] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if not self.first_ids:
            self.first_ids = list((batch["train"] if "train" in batch else batch)["ids"])

    def on_train_end(self, trainer, module) -> None:
        state = {k: v.detach().clone() for k, v in module.net.state_dict().items()}
        torch.save({"state": state, "ids": self.first_ids, "steps": module.batches_seen},
                   Path(self.out) / f"rank{trainer.global_rank}.pt")


@pytest.mark.parametrize("strategy", ["sandwich", pytest.param("gdas", marks=pytest.mark.slow)])
def test_two_process_ddp_ranks_agree(strategy, tmp_path, tiny_data_config):
    from supernet.config import from_dict, load_yaml, to_dict
    from supernet.training.config import FitConfig
    from supernet.training.run import fit

    data = load_yaml(REPO / "configs/fit/tiny.yaml")
    data.update(space=str(REPO / "configs/space/tiny.yaml"), data=to_dict(tiny_data_config), out_dir=str(tmp_path / "run"),
                strategy=strategy)
    data["bilevel"] = {"warmup_steps": 0}
    data["trainer"].update(strategy="ddp_spawn", devices=2, max_steps=3, ckpt_every_steps=2, num_threads=1)
    cfg = from_dict(FitConfig, data)
    result = fit(cfg, callbacks=[DumpRankState(str(tmp_path))], logger=False)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["steps"] == r1["steps"] == 3
    assert r0["ids"] != r1["ids"]  # each rank trains on its own batches
    assert r0["state"].keys() == r1["state"].keys()
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), k
    # The run's outputs come from rank 0 and hold the same weights.
    assert all(torch.equal(v, r0["state"][k]) for k, v in result.module.net.state_dict().items())
    if strategy == "gdas":
        assert any(r0["state"][k].abs().sum() > 0 for k in r0["state"] if k.startswith("alphas."))

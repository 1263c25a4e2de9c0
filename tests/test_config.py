"""supernet.config.merged_config: the shared reading of `-c A -c B key=value --out DIR` command lines."""

import pytest

from supernet.config import ConfigError, merged_config


def test_files_merge_in_order_then_overrides_then_out(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("name: a\noptim: {lr: 0.001, weight_decay: 0.01}\nseed: 0\n")
    b.write_text("optim: {lr: 0.002}\n")
    data, where = merged_config([a, b], ["optim.weight_decay=0.0", "seed=3"], out=tmp_path / "run")
    assert data == {"name": "a", "optim": {"lr": 0.002, "weight_decay": 0.0}, "seed": 3, "out_dir": str(tmp_path / "run")}
    assert where == f"{a} + {b} (overrides: optim.weight_decay=0.0 seed=3)"
    data, where = merged_config([a])
    assert data["optim"] == {"lr": 0.001, "weight_decay": 0.01} and "out_dir" not in data and where == str(a)
    assert merged_config([]) == ({}, "<defaults>")


def test_bad_input_names_the_file_or_the_override(tmp_path):
    with pytest.raises(ConfigError, match="missing.yaml: config file not found"):
        merged_config([tmp_path / "missing.yaml"])
    good = tmp_path / "good.yaml"
    good.write_text("seed: 0\n")
    with pytest.raises(ConfigError, match="override 'seed' must look like key.sub=value"):
        merged_config([good], ["seed"])

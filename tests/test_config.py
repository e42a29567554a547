"""Configs: YAML + dotted overrides; unknown keys and bad values are one-line ConfigErrors."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from a3bench.cli import app
from a3bench.config import load_config
from a3bench.errors import ConfigError


def test_overrides_and_fractions(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("dataset: synthetic\ntrain:\n  epochs: 2\n")
    cfg = load_config(cfg_file, ["train.epochs=4", "attack.eps=8/255", "model.a3.eval_mask=hard", "objective.name=attenuate-only"])
    assert cfg.train.epochs == 4 and cfg.attack.eps == pytest.approx(8 / 255)
    assert cfg.model.a3.eval_mask == "hard" and cfg.objective.name == "attenuate-only"


@pytest.mark.parametrize(
    "text,overrides,match",
    [
        ("trian:\n  epochs: 2\n", [], r"unknown config key\(s\) trian"),
        ("train:\n  epoch: 2\n", [], r"train.epoch .*valid: train.method"),
        ("", ["train.epochs=many"], "expected an integer"),
        ("", ["objective.name=amplify-only"], "objective.name must be one of"),
        ("", ["model.a3.colour=red"], "unknown a3 key"),
        ("", ["train.method=standard"], "needs adversarial examples"),
        ("train: [1, 2]\n", [], "expected a mapping"),
        ("train: {epochs: 2\n", [], "not valid YAML"),
        ("", ["noequals"], "key.sub=value"),
        ("", ["attack.norm=L7"], "unknown norm"),
    ],
)
def test_bad_configs(tmp_path, text, overrides, match):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_config(cfg_file, overrides)
    assert "\n" not in str(info.value)


def test_cli_bad_config_is_one_line_exit_2(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("train:\n  epohcs: 2\n")
    result = CliRunner().invoke(app, ["train", str(cfg_file), "--out", str(tmp_path / "m.pt")])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: unknown config key(s) train.epohcs")
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "m.pt").exists()
    missing = CliRunner().invoke(app, ["train", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "does not exist" in missing.output

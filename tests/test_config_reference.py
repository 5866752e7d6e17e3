"""The config reference page: every key of the schema is described, and the checked-in
page is what ``python -m gmdiff.config_reference`` generates."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from gmdiff import config, config_reference
from gmdiff.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "config_reference.md"


def test_every_schema_key_is_described():
    missing, extra = config_reference.mismatches()
    assert not missing, f"describe these config keys in gmdiff.config_reference.KEYS: {missing}"
    assert not extra, f"KEYS names keys the schema does not have: {extra}"


def test_the_check_can_fail(monkeypatch):
    """A key without a description (here: a field added to the sample section) is named,
    and the generator refuses to write the page."""

    @dataclasses.dataclass
    class Sample(config.SampleSection):
        new_knob: int = 3

    hints = config.RunConfig.__annotations__ | {"sample": Sample}
    monkeypatch.setattr(config.RunConfig, "__annotations__", hints)
    monkeypatch.delitem(config_reference.KEYS, "train.lr")
    missing, _ = config_reference.mismatches()
    assert "sample.new_knob" in missing and "train.lr" in missing
    with pytest.raises(ValueError, match="new_knob"):
        config_reference.render()


def test_checked_in_page_is_generated():
    assert PAGE.read_text() == config_reference.render(), (
        "book/config_reference.md is stale: run python -m gmdiff.config_reference"
    )
    assert config_reference.main(["--check", "--out", str(PAGE)]) == 0


def test_page_has_every_key_and_is_in_the_toc(tmp_path):
    text = PAGE.read_text()
    for name, _, default in config_reference.schema_keys():
        assert f"| `{name}` |" in text
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    assert "book/config_reference" in files
    stale = tmp_path / "page.md"
    stale.write_text(text.replace("Adam(W) learning rate", "learning rate"))
    assert config_reference.main(["--check", "--out", str(stale)]) == 1


def test_defaults_and_types_come_from_the_schema():
    keys = {name: (t, default) for name, t, default in config_reference.schema_keys()}
    assert keys["train.lr"] == ("float", "0.0002")
    assert keys["train.adam_betas"] == ("tuple[float, float]", "[0.9, 0.999]")
    assert keys["sample.sampler"] == ("str", "heun") and keys["data.name"][1] == "required"
    assert keys["evaluate.fid_reference"] == ("str", "''")
    # each scalar default, read as YAML, is the default the config loader fills in
    cfg = config.from_dict(
        {
            "data": {"name": "ring2d"},
            "model": {"net": "toy_mlp"},
            "train": {"steps": 1, "batch_size": 1},
        }
    )
    for name, (t, default) in keys.items():
        if default != "required" and t in ("int", "float", "str", "bool"):
            section, key = name.split(".")
            assert yaml.safe_load(default) == getattr(getattr(cfg, section), key), name


def test_help_points_to_the_config_description_and_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "gmdiff.config" in text and "book/config_reference.md" in text
    assert "gmdiff.cli" not in text.split("config format")[-1]
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("gmdiff ") and len(out.split()) == 2 and out.split()[1][0].isdigit()

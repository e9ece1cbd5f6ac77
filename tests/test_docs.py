"""The README and config/example.toml document every command, option, setting and column."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

from reconcile.settings import SETTING_FIELDS, load_toml

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_reference", ROOT / "scripts" / "gen_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_reference_is_current():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert _generator().render_readme(readme) == readme, "run: python scripts/gen_reference.py"


def test_example_config_is_current_and_every_key_loads(tmp_path):
    text = (ROOT / "config" / "example.toml").read_text(encoding="utf-8")
    assert _generator().example_toml() == text, "run: python scripts/gen_reference.py"
    uncommented = re.sub(r"^# (\w+ = )", r"\1", text, flags=re.MULTILINE)
    tomllib.loads(uncommented)
    path = tmp_path / "all.toml"
    path.write_text(uncommented, encoding="utf-8")
    assert set(load_toml(path)) == set(SETTING_FIELDS)


def test_every_setting_explains_itself():
    missing = [name for name, f in SETTING_FIELDS.items() if not f.metadata["help"]]
    assert missing == []


def test_readme_opens_with_the_two_setup_commands():
    head = (ROOT / "README.md").read_text(encoding="utf-8")[:400]
    assert "make demo" in head and "make test" in head
    assert "make test" in (ROOT / ".ci" / "run").read_text()

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconcile.ca.dates import DateOrder
from reconcile.errors import ConfigError
from reconcile.graph.config import AuthMethod, Cloud
from reconcile.settings import SETTING_FIELDS, Origin, resolve


def toml(tmp_path, text):
    path = tmp_path / "reconcile.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_precedence_flags_over_env_over_toml_over_defaults(tmp_path):
    config = toml(
        tmp_path, '[run]\ngrace_hours = 12\n[ca]\ndate_order = "dmy"\ntimezone = "Europe/Berlin"\n'
    )
    env = {"RECONCILE_GRACE_HOURS": "6", "RECONCILE_DATE_ORDER": "ymd"}
    settings = resolve({"grace_hours": 3.0}, env=env, config_path=config)
    assert settings.grace_hours == 3.0
    assert settings.date_order == "ymd"
    assert settings.ca_timezone == "Europe/Berlin"
    assert settings.cloud == "global"


def test_env_types_are_converted():
    env = {
        "RECONCILE_STRICT": "yes",
        "RECONCILE_TEMPLATE": "Intune-SCEP, 1.2.3",
        "RECONCILE_AS_OF": "2026-11-20T02:00:00Z",
        "RECONCILE_CA_EXPORT": "a.csv,b.csv",
    }
    settings = resolve({}, env=env)
    assert settings.strict is True
    assert settings.templates == ("Intune-SCEP", "1.2.3")
    assert settings.as_of == datetime(2026, 11, 20, 2, tzinfo=UTC)
    assert settings.ca_exports == (Path("a.csv"), Path("b.csv"))


def test_toml_paths_are_relative_to_the_config_file(tmp_path):
    config = toml(tmp_path, '[ca]\nexports = ["exports/ca1.csv"]\n[intune]\nsnapshot = "snap"\n')
    settings = resolve({}, env={}, config_path=config)
    assert settings.ca_exports == (tmp_path / "exports/ca1.csv",)
    assert settings.snapshot == tmp_path / "snap"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[ca]\nnope = 1\n", "unknown setting 'ca.nope'"),
        ("[ca\n", "invalid TOML"),
        ('[run]\ngrace_hours = "soon"\n', "invalid value for grace_hours"),
        ('[ca]\ndate_order = "ydm"\n', "date_order must be one of"),
        ('[ca]\ntimezone = "Mars/Olympus"\n', "not a known time zone"),
    ],
)
def test_bad_config_is_a_one_line_config_error(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as info:
        resolve({}, env={}, config_path=toml(tmp_path, text))
    assert "\n" not in str(info.value)


def test_missing_config_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match="missing.toml: cannot read"):
        resolve({}, env={}, config_path=tmp_path / "missing.toml")


def test_secrets_stay_out_of_repr():
    settings = resolve({}, env={"RECONCILE_CLIENT_SECRET": "s3cr3t-value"})
    assert "s3cr3t-value" not in repr(settings)
    assert settings.secret_values() == ("s3cr3t-value",)


def test_every_setting_has_a_distinct_env_var_and_toml_key():
    envs = [f.metadata["env"] for f in SETTING_FIELDS.values()]
    keys = [f.metadata["toml"] for f in SETTING_FIELDS.values()]
    assert len(set(envs)) == len(envs) and all(e.startswith("RECONCILE_") for e in envs)
    assert len(set(keys)) == len(keys)


def test_issuers_pair_with_exports_in_order():
    env = {
        "RECONCILE_CA_EXPORT": "a.csv,b.csv",
        "RECONCILE_CA_ISSUER": "CN=CA One, DC=corp;CN=CA Two, DC=corp",
    }
    settings = resolve({}, env=env)
    assert settings.ca_issuer == ("CN=CA One, DC=corp", "CN=CA Two, DC=corp")
    assert [settings.issuer_for(i) for i in range(2)] == [
        "CN=CA One, DC=corp",
        "CN=CA Two, DC=corp",
    ]
    one = resolve({"ca_exports": ("a.csv", "b.csv"), "ca_issuer": "CA"}, env={})
    assert [one.issuer_for(i) for i in range(2)] == ["CA", "CA"]
    assert resolve({}, env={}).issuer_for(0) is None


def test_issuer_count_must_match_exports():
    flags = {"ca_exports": ("a.csv", "b.csv", "c.csv"), "ca_issuer": ("X", "Y")}
    with pytest.raises(ConfigError, match="2 CA issuers for 3 CA exports"):
        resolve(flags, env={})


def test_ca_sources_from_toml_env_and_flags(tmp_path: Path) -> None:
    config = tmp_path / "reconcile.toml"
    config.write_text('[ca]\nsources = ["cloud-pki"]\n', encoding="utf-8")
    assert resolve({}, {}, config).ca_sources == ("cloud-pki",)
    assert resolve({}, {"RECONCILE_CA_SOURCE": "cloud-pki"}).ca_sources == ("cloud-pki",)
    assert resolve({"ca_sources": ("cloud-pki",)}, {}).ca_sources == ("cloud-pki",)


def test_an_unknown_ca_source_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="CA source must be one of cloud-pki, not 'adcs-live'"):
        resolve({"ca_sources": ("adcs-live",)}, {})


@pytest.mark.parametrize(
    "raw", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "9999-12-31T00:00:00Z"]
)
def test_out_of_range_as_of_is_a_one_line_usage_error(raw):
    from typer.testing import CliRunner

    from reconcile.cli import app

    done = CliRunner().invoke(app, ["run", "--ca-export", "x.csv", "--as-of", raw])
    assert done.exit_code == 2
    assert done.stderr.strip().splitlines() == [
        f"reconcile: error: invalid value for --as-of: {raw!r} is out of range"
        + ("" if raw.endswith(("-01:00", "+01:00")) else " (years 1970 to 9000)")
    ]


def test_each_value_records_where_it_came_from(tmp_path):
    config = toml(tmp_path, '[run]\ngrace_hours = 12\n[ca]\ntimezone = "Europe/Berlin"\n')
    env = {"RECONCILE_DATE_ORDER": "mdy", "RECONCILE_DEVICE_PATTERN": "CN=(.+)"}
    settings = resolve({"expiry_days": 30}, env=env, config_path=config)
    assert [settings.origin(n) for n in ("expiry_days", "date_order", "grace_hours", "cloud")] == [
        Origin.FLAG,
        Origin.ENV,
        Origin.CONFIG,
        Origin.DEFAULT,
    ]
    # A value equal to the default is still the user's choice.
    assert settings.date_order == DateOrder.MDY
    assert settings.reader_options().given == {"date_order", "timezone"}
    assert resolve({}, env={}, config_path=None).reader_options().given == frozenset()
    assert settings.label("device_pattern") == "RECONCILE_DEVICE_PATTERN"
    assert settings.label("ca_timezone") == "ca.timezone"
    assert settings.label("expiry_days") == "--expiry-days"


def test_choices_are_enums_and_name_their_origin_when_wrong():
    settings = resolve({"auth_method": "device-code", "cloud": "china"}, env={})
    assert settings.auth_method is AuthMethod.DEVICE_CODE
    assert settings.graph_config().cloud is Cloud.CHINA
    with pytest.raises(
        ConfigError, match="^RECONCILE_CLOUD must be one of global, usgov, usgovdod"
    ):
        resolve({}, env={"RECONCILE_CLOUD": "mars"})
    with pytest.raises(ConfigError, match="^--auth must be one of auto, secret, certificate"):
        resolve({"auth_method": "password"}, env={})


def test_the_graph_config_carries_the_graph_fields_and_hides_secrets():
    settings = resolve(
        {"tenant_id": "t", "client_secret": "s3cret", "graph_max_attempts": 2}, env={}
    )
    config = settings.graph_config()
    assert (config.tenant_id, config.client_secret, config.max_attempts) == ("t", "s3cret", 2)
    assert "s3cret" not in repr(config)
    assert config.secret_values() == ("s3cret",)


BEHIND_THE_DOOR = ("ca", "evidence", "graph", "intune", "doctor.py", "lock.py", "retention.py")


def _imports_settings(path: Path) -> bool:
    import ast

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "reconcile.settings":
            return True
        if isinstance(node, ast.Import) and any(a.name == "reconcile.settings" for a in node.names):
            return True
    return False


def test_only_the_door_reads_the_settings():
    """The parts below the CLI get small typed options; none of them imports Settings."""
    import reconcile

    root = Path(reconcile.__file__).parent
    paths = [
        path
        for name in BEHIND_THE_DOOR
        for path in ([root / name] if name.endswith(".py") else sorted((root / name).rglob("*.py")))
    ]
    assert len(paths) > 40
    assert [str(p.relative_to(root)) for p in paths if _imports_settings(p)] == []
    assert _imports_settings(root / "cli.py")  # the check sees an import where there is one

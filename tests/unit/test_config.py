"""Configuration precedence: defaults < [tool.kitaru] < environment < configure()."""

import pytest

from kitaru.config import configure, reset_configuration, resolve_settings
from kitaru.errors import KitaruUsageError


@pytest.fixture(autouse=True)
def clean(monkeypatch, tmp_path):
    for name in (
        "KITARU_HOME",
        "KITARU_CACHE",
        "KITARU_RETRIES",
        "KITARU_STACK",
        "KITARU_LEASE_SECONDS",
        "KITARU_STORAGE_OPTIONS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    reset_configuration()
    yield
    reset_configuration()


def test_defaults(tmp_path):
    settings = resolve_settings(tmp_path)
    assert settings.home == str(tmp_path / "user" / ".kitaru")
    assert settings.storage_url == (tmp_path / "user" / ".kitaru" / "storage").as_uri()
    assert settings.cache is True and settings.retries == 0 and settings.lease_seconds == 30.0
    assert settings.sources["cache"] == "default"


def test_precedence_chain(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[tool.kitaru]\ncache = false\nretries = 1\nstack = 'proj'\n")
    nested = tmp_path / "src" / "pkg"
    nested.mkdir(parents=True)
    settings = resolve_settings(nested)  # found by walking up
    assert (settings.cache, settings.retries, settings.stack) == (False, 1, "proj")
    assert "[tool.kitaru]" in settings.sources["cache"]

    monkeypatch.setenv("KITARU_RETRIES", "2")
    monkeypatch.setenv("KITARU_CACHE", "1")
    settings = resolve_settings(nested)
    assert (settings.cache, settings.retries) == (True, 2)
    assert settings.sources["retries"] == "environment KITARU_RETRIES"

    configure(retries=3)
    settings = resolve_settings(nested)
    assert settings.retries == 3 and settings.sources["retries"] == "configure()"


def test_project_home_after_init(tmp_path):
    (tmp_path / ".kitaru").mkdir()
    assert resolve_settings(tmp_path).home == str(tmp_path / ".kitaru")


@pytest.mark.parametrize(
    ("name", "value"), [("KITARU_CACHE", "maybe"), ("KITARU_RETRIES", "two"), ("KITARU_STORAGE_OPTIONS", "{bad")]
)
def test_bad_environment_values_say_what_to_set(monkeypatch, tmp_path, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(KitaruUsageError, match=name):
        resolve_settings(tmp_path)

"""switch.config: [recording] and the `record` switches of tenants, DIDs and routes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from switch.config import ConfigError, load_config, load_demo_config


def _load(tmp_path: Path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_config(path)


def _errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    return [line.split(": ", 1)[1] for line in caught.value.lines]


def test_defaults_record_nothing_as_wav_under_the_data_dir() -> None:
    config = load_demo_config()
    assert config.recording.format == "wav"
    assert config.recording.directory == Path("data") / "recordings"
    demo = config.tenants["demo"]
    assert demo.record is False
    assert {did.record for did in demo.dids.values()} == {None}
    assert {route.record for route in demo.outbound.values()} == {None}


def test_the_directory_follows_data_dir_unless_given(tmp_path: Path) -> None:
    config = _load(tmp_path, '[node]\ndata_dir = "/srv/switch"\n')
    assert config.recording.directory == Path("/srv/switch/recordings")
    config = config.with_overrides(data_dir=tmp_path / "elsewhere")
    assert config.recording.directory == tmp_path / "elsewhere" / "recordings"
    config = _load(tmp_path, '[recording]\ndirectory = "/mnt/rec"\nformat = "opus"\n')
    assert (config.recording.directory, config.recording.format) == (Path("/mnt/rec"), "opus")


def test_record_on_tenants_dids_and_routes(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """
        [tenants.acme]
        record = true

        [tenants.acme.agents."1001"]
        password = "x"

        [tenants.acme.trunks.carrier]
        outbound_host = "192.0.2.1"

        [tenants.acme.dids."+15551230000"]
        agent = "1001"
        record = false

        [tenants.acme.outbound.out]
        prefix = "9"
        trunk = "carrier"
        record = true
        """,
    )
    acme = config.tenants["acme"]
    assert acme.record is True
    assert acme.dids["+15551230000"].record is False
    assert acme.outbound["out"].record is True


def test_recording_errors_say_what_would_be_right(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        """
        [recording]
        format = "mp3"
        directory = ""
        keep_days = 30

        [tenants.acme]
        record = "yes"
        """,
    )
    assert errors == [
        "recording.format: 'mp3' is not one of wav, opus",
        'recording.directory: must not be empty (e.g. "./data")',
        "recording.keep_days: unknown key (expected one of directory, format)",
        "tenants.acme.record: expected true or false, got 'yes' (a string) (without quotes)",
    ]

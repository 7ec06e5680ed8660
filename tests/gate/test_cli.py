from __future__ import annotations

import json
import subprocess
import sys

import pytest

from preflight.cli import main


def test_exit_0_when_all_pass(samples, capsys):
    assert main(["check", "--policy", "progeny_document", str(samples / "biden.jpg")]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "HEIGHT_ABOVE_RECOMMENDED" in out


def test_exit_1_when_any_fails(samples, capsys):
    code = main(["check", "--policy", "progeny_document", str(samples / "biden.jpg"), str(samples / "rocket.jpg")])
    assert code == 1
    out = capsys.readouterr().out
    assert "RESOLUTION_TOO_LOW" in out and "427" in out and "480" in out
    assert "Use a better camera" in out


def test_json_lines(samples, capsys):
    main(["check", "--json", "--policy", "progeny_document", str(samples / "rocket.jpg"), str(samples / "biden.jpg")])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["issues"]["preflight"]["RESOLUTION_TOO_LOW"]
    assert first["source"].endswith("rocket.jpg")


def test_exit_2_on_usage_errors(tmp_path, samples, capsys):
    assert main(["check", str(tmp_path / "missing.jpg")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("nonsense_field = 3")
    assert main(["check", "--policy", str(bad), str(samples / "rocket.jpg")]) == 2
    assert main(["check", "--policy", "no_such_preset", str(samples / "rocket.jpg")]) == 2


def test_german_hints(samples, capsys):
    main(["check", "--locale", "de", "--policy", "progeny_document", str(samples / "rocket.jpg")])
    assert "Auflösung" in capsys.readouterr().out
    # --json too (it used to give English hints whatever --locale said)
    main(["check", "--json", "--locale", "de-AT", "--policy", "progeny_document", str(samples / "rocket.jpg")])
    body = json.loads(capsys.readouterr().out)
    assert body["locale"] == "de" and "Auflösung" in body["hints"][0] and "Auflösung" in body["details"][0]["hint"]


def test_an_unknown_locale_is_a_usage_error(samples, capsys):
    with pytest.raises(SystemExit) as exc:  # it used to fall back to English without a word
        main(["check", "--locale", "xx", str(samples / "rocket.jpg")])
    assert exc.value.code == 2 and "no hints in 'xx'; available: de, en" in capsys.readouterr().err


def test_console_entry_point_as_a_process(samples):
    proc = subprocess.run([sys.executable, "-m", "preflight", "check", "--json", "--policy", "progeny_document",
                           str(samples / "rocket.jpg")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["passed"] is False
    no_args = subprocess.run([sys.executable, "-m", "preflight"], capture_output=True, text=True, timeout=60)
    assert no_args.returncode == 2

import subprocess
import sys

import nubis
from nubis.cli import main


def test_version(capsys) -> None:
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert nubis.__version__ in capsys.readouterr().out


def test_help_lists_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "nubis", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "usage: nubis" in out
    assert "ring" in out


def test_no_command_prints_help(capsys) -> None:
    assert main([]) == 0
    assert "usage: nubis" in capsys.readouterr().out

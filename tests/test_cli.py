"""The command line: options beside handlers, errors as messages, progress through logging."""

from __future__ import annotations

import logging
import subprocess
import sys

import click
import pytest

from revmodel import cli


def test_every_command_is_registered_with_help(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in (
        "sample",
        "validate",
        "cube",
        "forecast",
        "backtest",
        "territories",
        "plan",
        "serve",
    ):
        assert name in cli.cli.commands
        assert f"  {name} " in out


def test_usage_errors_exit_2_with_click_message(capsys):
    assert cli.main(["cube", "somewhere"]) == 2
    err = capsys.readouterr().err
    assert "Error: Missing option '--out'." in err
    assert cli.main(["nonsense"]) == 2
    assert "No such command 'nonsense'" in capsys.readouterr().err
    assert cli.main(["sample", "--out", "x", "--reps", "many"]) == 2
    assert "'many' is not a valid integer" in capsys.readouterr().err


def test_a_new_command_is_a_few_lines(capsys):
    @cli.cli.command("echo-twice")
    @click.argument("word")
    def _echo(word: str) -> int:
        click.echo(word * 2)
        return 3

    try:
        assert cli.main(["echo-twice", "ab"]) == 3
        assert capsys.readouterr().out == "abab\n"
    finally:
        del cli.cli.commands["echo-twice"]


def test_progress_goes_to_stderr_through_logging_and_verbosity_sets_the_level(capsys):
    @cli.cli.command("talk")
    def _talk() -> int:
        log = logging.getLogger("revmodel.talk")
        log.debug("detail")
        log.info("progress")
        log.warning("careful")
        click.echo("result")
        return 0

    try:
        assert cli.main(["talk"]) == 0
        captured = capsys.readouterr()
        assert captured.out == "result\n"
        assert captured.err == "progress\ncareful\n"
        assert cli.main(["-v", "talk"]) == 0
        assert capsys.readouterr().err == "detail\nprogress\ncareful\n"
        assert cli.main(["--quiet", "talk"]) == 0
        assert capsys.readouterr().err == "careful\n"
    finally:
        del cli.cli.commands["talk"]
        cli.configure_logging(0)


def test_domain_modules_hold_no_argparse_handlers():
    import inspect

    from revmodel import backtest, cube, forecast, sample, sources, territory
    from revmodel.apps import serve
    from revmodel.publish import run

    for module in (backtest, cube, forecast, run, sample, sources, territory, serve):
        source = inspect.getsource(module)
        assert "getattr(args" not in source, module.__name__
        assert not [n for n in vars(module) if n.endswith("_command") and n != "voila_command"]


@pytest.mark.slow
def test_python_dash_m_revmodel_runs_the_same_cli(tmp_path):
    out = tmp_path / "s"
    proc = subprocess.run(
        [sys.executable, "-m", "revmodel", "sample", "--out", str(out), "--reps", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "error: --reps must be a whole number >= 1 (got 0); the sample needs at least one rep.\n"
    )

"""The `mellm` command as a user meets it: help with examples, one-line errors, tracebacks only with --debug."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from mellm_core.cli import build_parser, main


def _leaf_parsers(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _leaf_parsers(sub, (*prefix, name))
            return
    yield prefix, parser


LEAVES = list(_leaf_parsers(build_parser()))


def test_expected_commands_exist():
    names = {" ".join(path) for path, _ in LEAVES}
    assert names >= {"plugins", "config show", "map", "maps", "data inspect", "synth", "instructions", "score"}


@pytest.mark.parametrize(("path", "parser"), LEAVES, ids=lambda x: " ".join(x) if isinstance(x, tuple) else "")
def test_every_command_has_help_with_a_runnable_example(path, parser):
    text = parser.format_help()
    assert "example:" in text
    example = text.split("example:")[1].strip().splitlines()[0].split()
    assert example[0] == "mellm" and example[1:1 + len(path)] == list(path)


def test_errors_are_one_line_and_debug_shows_the_traceback(tmp_path):
    args = [sys.executable, "-m", "mellm_core", "map", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o",
            str(tmp_path / "m.png")]
    plain = subprocess.run(args, capture_output=True, text=True)
    assert plain.returncode == 1
    assert plain.stderr.strip().splitlines() == [f"error: image {tmp_path / 'a.png'} does not exist"]
    debug = subprocess.run([args[0], "-m", "mellm_core", "--debug", *args[3:]], capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["map"])
    assert exit_info.value.code == 2
    assert "the following arguments are required" in capsys.readouterr().err


def test_overrides_may_follow_options(capsys):
    assert main(["config", "show", "quickstart", "maps.flow=dis"]) == 0
    capsys.readouterr()
    parser_args = ["map", "a.png", "b.png", "-o", "m.png", "--flow", "dis", "maps.colorizer_params.step=45"]
    args, extra = build_parser().parse_known_args(parser_args)
    assert extra == ["maps.colorizer_params.step=45"] and args.overrides == []
    assert main([*parser_args[:5], "--json", "maps.nonsense=1"]) == 2  # the override reached the recipe check
    assert "unknown key 'maps.nonsense'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["plugins", "stray=1"])

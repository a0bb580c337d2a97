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


HEAVY_PROBE = """
import json, sys
from mellm_core.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:
    rc = exc.code
print(json.dumps({"rc": rc, "heavy": sorted(m for m in ("torch", "transformers", "ray") if m in sys.modules)}))
"""


def test_help_map_score_and_config_import_neither_torch_transformers_nor_ray(tmp_path, motion_pair):
    """Plugins load one kind at a time and backbones load their model code when created: the light commands
    start without the heavy libraries."""
    import json

    import cv2

    for name in ("onset", "apex"):
        cv2.imwrite(str(tmp_path / f"{name}.png"), motion_pair[name])
    (tmp_path / "pred.jsonl").write_text(json.dumps({"sample_id": "a", "label": "happiness",
                                                     "text": "Micro-expression: happiness."}) + "\n")
    commands = [["--help"], ["map", str(tmp_path / "onset.png"), str(tmp_path / "apex.png"), "-o",
                             str(tmp_path / "map.png"), "--flow", "dis"],
                ["score", str(tmp_path / "pred.jsonl")], ["config", "show", "quickstart"]]
    for args in commands:
        out = subprocess.run([sys.executable, "-c", HEAVY_PROBE, *args], capture_output=True, text=True,
                             timeout=300).stdout.strip().splitlines()[-1]
        assert json.loads(out) == {"rc": 0, "heavy": []}, (args, out)

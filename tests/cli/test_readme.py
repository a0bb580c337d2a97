"""The documented command examples, run as written: every `mellm ...` line of a fenced code block exits 0.

The commands are read from README.md and the pages of docs/ it lists under "Where to go next", in that order
(none is listed here), so a command added there is tested here. They run in document order in one temporary
folder, each through bash as a user would type it, with ``README_OVERRIDES`` appended to those that run a
recipe. Input files the docs assume the user has (onset.jpg, apex.jpg, outputs.jsonl, pairs.csv, runs/a and
runs/b) are made first. `mellm serve` must answer GET /healthz and exit 0 within 30 s of SIGINT (Ctrl-C).
Commands naming the user's own resources are set aside by ``EXCLUDED`` alone.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from helpers import free_port
from serving import START_TIMEOUT_S, _first_line, stop_serve

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

# Commands that cannot run on a test machine because they name the user's own resources: pattern -> why.
# A README command matching any of these is not run; every other `mellm` command of a fenced block is.
EXCLUDED: dict[str, str] = {
    r"(?:^|[\s=])/(?:data|models|shared)/": "names the user's datasets, model weights or shared storage",
    r"\b(?:s3|gs|abfs|hdfs)://": "names the user's cloud bucket",
    r"--address\s+HEAD:": "attaches to the user's Ray cluster",
    r"recipes/my_run\.yaml|runs/hosted\b": "names the user's own recipe and hosted-model run",
    r"recipes/mellm_qwen2_5_vl_7b\.yaml": "runs the 7B model (16 GB of weights, GPUs)",
    r"runs/mellm_paper\b": "the paper recipe's run: its datasets and the 7B model",
    r"use_gpu=true|gpus_per_actor=[1-9]|model_gpus=[1-9]": "needs GPUs",
}
MIN_RUNNABLE = 20  # so that the patterns above cannot silently swallow the README

# Appended to every command that runs a recipe (train, eval, instructions, maps/analyze --recipe, serve, export,
# demo, config show) so that each takes seconds on 2 CPU cores; the README's commands are tested with these.
# Later overrides win, so these also replace the README's own values for the same keys (train.max_steps=3000).
README_OVERRIDES: list[str] = [
    "data.root=tiny-synthme",  # an 8-clip SynthME made by the `workdir` fixture instead of the recipe's 200 clips
    "maps.flow=dis",  # DIS optical flow instead of TV-L1 (about 100x faster)
    "train.max_steps=2",  # two optimizer steps ...
    "train.batch_size=2",  # ... of two samples ...
    "train.num_workers=1",  # ... on one Ray Train worker ...
    "train.grad_accum=1",  # ... in one micro-batch (the 7B recipe, which `mellm plan` reads, accumulates 4)
    "backbone.params.max_new_tokens=4",  # short answers from the tiny model (eval, analyze, serve)
]

COMMAND_TIMEOUT_S = 600
STOP_TIMEOUT_S = 30  # the README: `mellm serve` exits 0 within 30 s of the signal
COMMAND = re.compile(r"^(?:[A-Za-z_]\w*=(?:\$\([^)]*\)|\"[^\"]*\"|'[^']*'|\S+)\s+)*mellm\s")
OPTIONAL = re.compile(r"\s+\[-[^\]]*\]")  # `[--json]`, `[--flow dis]`: optional parts, left out
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console"}  # fenced blocks of commands (```text blocks show output)


@dataclass(frozen=True)
class ReadmeCommand:
    """One documented `mellm` command: where it starts and its text as run (plain form, no comment)."""

    line: int
    text: str
    source: str = "README.md"

    @property
    def where(self) -> str:
        return f"{self.source} line {self.line}"

    @property
    def argv(self) -> list[str]:
        """The words from `mellm` on (environment assignments in front left out)."""
        words = shlex.split(self.text)
        return words[words.index("mellm"):]


def _strip_comment(line: str) -> str:
    """``line`` without a trailing shell comment (a ``#`` that starts a word outside quotes)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def readme_commands(text: str, source: str = "README.md") -> list[ReadmeCommand]:
    """Each distinct `mellm` command of the fenced shell blocks, in document order: continued lines joined,
    comments and optional ``[--...]`` parts removed; a repeated command is kept at its first place."""
    lines, found, block, i = text.splitlines(), {}, None, 0
    while i < len(lines):
        start, line = i + 1, lines[i].strip()
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + " " + lines[i].strip()
        i += 1
        if line.startswith("```"):
            block = (line[3:].split() or [""])[0] if block is None else None  # the block's language, or outside
        elif block in SHELL_BLOCKS and COMMAND.match(line):
            command = " ".join(OPTIONAL.sub("", _strip_comment(line)).split())
            found.setdefault(command, ReadmeCommand(start, command, source))
    return list(found.values())


def excluded_reason(command: ReadmeCommand) -> str | None:
    """Why ``command`` is not run (the first ``EXCLUDED`` pattern it matches), or None."""
    return next((why for pattern, why in EXCLUDED.items() if re.search(pattern, command.text)), None)


def runs_recipe(command: ReadmeCommand) -> bool:
    """Whether the command runs a recipe (as `mellm` itself parses it), and so takes ``README_OVERRIDES``."""
    from mellm_core.cli import build_parser

    try:
        args, _ = build_parser().parse_known_args(command.argv[1:])
    except SystemExit:  # a usage error: the command itself will show it when it runs
        return False
    return bool(getattr(args, "recipe", None))


def documents() -> list[Path]:
    """README.md, then the pages of docs/ in the order its "Where to go next" lists them."""
    listing = README.read_text(encoding="utf-8").split("## Where to go next", 1)[-1]
    linked = re.findall(r"\]\((docs/[\w\-]+\.md)\)", listing)
    return [README, *(ROOT / p for p in dict.fromkeys(linked))]


def documented_commands() -> list[ReadmeCommand]:
    """Each distinct command of every document, at its first place."""
    found: dict[str, ReadmeCommand] = {}
    for doc in documents():
        for command in readme_commands(doc.read_text(encoding="utf-8"), doc.relative_to(ROOT).as_posix()):
            found.setdefault(command.text, command)
    return list(found.values())


COMMANDS = documented_commands()
RUNNABLE = [c for c in COMMANDS if excluded_reason(c) is None]


# ---------------------------------------------------------------- the user's files


def _write_metrics(run: Path, model: str, answers: list[tuple[str, str]]) -> None:
    """``run/eval/metrics.json`` as `mellm eval` writes it, for (gold, answered) emotion pairs."""
    from mellm_core.files.layout import METRICS
    from mellm_core.files.storage import Location
    from mellm_core.results.evaluation import metrics_of
    from mellm_core.summaries import EvalResult

    rows = [{"sample_id": f"s{i}", "task": "mer", "label": gold, "emotion": said, "dataset": "synthme"}
            for i, (gold, said) in enumerate(answers)]
    (run / "eval").mkdir(parents=True)
    EvalResult("all", metrics_of(rows, "all"), model=model, backbone="qwen2_5_vl",
               test_sha256="0" * 64).write(Location(run / "eval" / METRICS))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every command runs in, holding the files the README assumes the user has: a small SynthME
    (``tiny-synthme``, for ``README_OVERRIDES``), onset.jpg/apex.jpg from its first clip, pairs.csv over 4 of its clips,
    outputs.jsonl of model answers, and two evaluated runs runs/a and runs/b."""
    from mellm_core import create
    from mellm_core.data.datasets import load_samples

    root = tmp_path_factory.mktemp("readme")
    create("dataset", "synthme").generate(root / "tiny-synthme", n=8, seed=0)
    samples = load_samples("synthme", root / "tiny-synthme").samples
    pairs = samples[:4]  # `mellm maps --manifest` makes TV-L1 maps of these: a few are enough
    shutil.copy(samples[0].onset_path, root / "onset.jpg")
    shutil.copy(samples[0].apex_path, root / "apex.jpg")
    rows = ["sample_id,onset_path,apex_path,subject,emotion,aus"] + [
        f"{s.subject}_{s.clip},{Path(s.onset_path).relative_to(root)},{Path(s.apex_path).relative_to(root)},"
        f"{s.subject},{s.emotion},{'+'.join(map(str, s.aus))}" for s in pairs]
    (root / "pairs.csv").write_text("\n".join(rows) + "\n")
    answers = [("happiness", "AUs: AU6 + AU12. Micro-expression: happiness."),
               ("surprise", "AUs: AU1 + AU2. Micro-expression: surprise."),
               ("disgust", "AUs: AU9. Micro-expression: sadness."), ("sadness", "I cannot tell.")]
    (root / "outputs.jsonl").write_text(
        "".join(json.dumps({"id": f"s{i}", "label": gold, "text": text}) + "\n"
                for i, (gold, text) in enumerate(answers)))
    _write_metrics(root / "runs" / "a", "tiny-random", [("happiness", "happiness"), ("surprise", "disgust"),
                                                         ("disgust", "disgust")])
    _write_metrics(root / "runs" / "b", "other-model", [("happiness", "surprise"), ("surprise", "surprise"),
                                                         ("disgust", None)])
    return root


# ---------------------------------------------------------------- running commands


def _environment() -> dict[str, str]:
    """This environment (with the session's MELLM_CACHE), this venv's `mellm` first on PATH, and no RAY_ADDRESS:
    every command starts its own local Ray instance, as on a user's machine."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _shell_line(command: ReadmeCommand, extra: list[str]) -> str:
    """The command as typed, then the overrides it takes."""
    overrides = [*README_OVERRIDES, *extra] if runs_recipe(command) else extra
    return " ".join([command.text, *map(shlex.quote, overrides)])


def _tail(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else "..." + text[-limit:]


def _run(command: ReadmeCommand, cwd: Path) -> None:
    """Run a command to its end; it must exit 0 (else the message shows its stderr)."""
    line = _shell_line(command, [])
    try:
        done = subprocess.run(["bash", "-c", line], cwd=cwd, env=_environment(), capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{command.where}: `{line}` ran over {COMMAND_TIMEOUT_S} s\nstderr:\n"
                    f"{_tail(str(exc.stderr or ''))}")
    assert done.returncode == 0, (f"{command.where}: `{line}` exited {done.returncode}\nstderr:\n"
                                  f"{_tail(done.stderr)}\nstdout:\n{_tail(done.stdout, 1000)}")


def _serve(command: ReadmeCommand, cwd: Path) -> None:
    """Start a long-running `mellm serve`, wait for its ready line, GET /healthz, then Ctrl-C (SIGINT): it must
    exit 0 within 30 s and leave none of the processes it started (its local Ray instance)."""
    line = _shell_line(command, [f"serve.port={free_port()}"])  # 8000 may be taken on a shared machine
    log = cwd / f"serve-{command.source.replace('/', '-')}-{command.line}.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(["bash", "-c", line], cwd=cwd, env=_environment(), stdout=subprocess.PIPE,
                                stderr=stderr, text=True)  # bash execs a simple command: proc is `mellm` itself
    try:
        ready = _first_line(proc, START_TIMEOUT_S)
        where = f"{command.where}: `{line}`"
        assert ready, f"{where} printed no ready line (exit {proc.poll()})\nstderr:\n{_tail(log.read_text())}"
        url = re.search(r"https?://[^\s/]+/", ready)
        assert url, f"{where}: no URL in its ready line {ready!r}"
        with urllib.request.urlopen(url.group(0) + "healthz", timeout=30) as answer:
            assert answer.status == 200 and json.load(answer) == {"status": "ok"}
        tree = psutil.Process(proc.pid).children(recursive=True)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{where} still ran {STOP_TIMEOUT_S} s after SIGINT\nstderr:\n{_tail(log.read_text())}")
        left = psutil.wait_procs(tree, timeout=max(0.0, STOP_TIMEOUT_S - (time.monotonic() - signalled)))[1]
        assert code == 0, f"{where} exited {code} on SIGINT\nstderr:\n{_tail(log.read_text())}"
        assert not left, f"{where} left processes running: {[p.pid for p in left]}"
    finally:
        stop_serve(proc)


# ---------------------------------------------------------------- tests


def test_commands_are_read_as_a_shell_would_read_them() -> None:
    """Fenced shell blocks only; continued lines joined; comments, optional parts, repeats dropped; VAR= prefixes."""
    text = ("`mellm plugins` inline\n```text\n  mellm demo\n```\n"
            "```bash\nmellm map a.jpg b.jpg -o m.png [--flow dis] [--json]  # one pair\n"
            "mellm train quickstart \\\n    train.lr=1e-3 'x=#1'\nKEY=$(openssl rand -hex 4) mellm serve quickstart\n"
            "ray start --head\nmellm map a.jpg b.jpg -o m.png\n```\nmellm outside\n")
    commands = readme_commands(text)
    assert [(c.line, c.text) for c in commands] == [
        (6, "mellm map a.jpg b.jpg -o m.png"), (7, "mellm train quickstart train.lr=1e-3 'x=#1'"),
        (9, "KEY=$(openssl rand -hex 4) mellm serve quickstart")]
    assert commands[2].argv[:2] == ["mellm", "serve"]
    assert [runs_recipe(c) for c in commands] == [False, True, True]


def test_exclusions_are_exactly_the_listed_patterns_and_leave_enough_to_run() -> None:
    """Only commands matching ``EXCLUDED`` are set aside, every pattern sets one aside, and most commands run."""
    excluded = {c.text: excluded_reason(c) for c in COMMANDS if excluded_reason(c)}
    listing = "\n".join(f"  {c.where}: {c.text}\n      ({excluded[c.text]})" for c in COMMANDS
                        if c.text in excluded)
    matching = {c.text for c in COMMANDS if any(re.search(p, c.text) for p in EXCLUDED)}
    assert set(excluded) == matching and len(RUNNABLE) + len(excluded) == len(COMMANDS), listing
    unused = [p for p in EXCLUDED if not any(re.search(p, c.text) for c in COMMANDS)]
    assert not unused, f"patterns that exclude no README command: {unused}\nexcluded:\n{listing}"
    assert len(RUNNABLE) >= MIN_RUNNABLE, (f"only {len(RUNNABLE)} of {len(COMMANDS)} README commands run "
                                           f"(at least {MIN_RUNNABLE} expected); excluded:\n{listing}")


@pytest.mark.parametrize("command", RUNNABLE, ids=[c.text for c in RUNNABLE])
def test_readme_command_succeeds(command: ReadmeCommand, workdir: Path) -> None:
    """The command, as written, exits 0 in the shared folder (a `mellm serve` answers, then stops on Ctrl-C)."""
    if command.argv[1] == "serve":
        _serve(command, workdir)
    else:
        _run(command, workdir)


def test_on_a_fresh_checkout_analyze_and_serve_answer_with_the_base_model_and_say_so(workdir: Path,
                                                                                      tmp_path: Path) -> None:
    """Before anything is trained (the page-order run above trains first): `mellm analyze ONSET APEX` with the
    default recipe answers with the base model, says so and names the command that trains one; `mellm serve
    quickstart` serves it (and its answers carry the same note)."""
    for name in ("onset.jpg", "apex.jpg"):
        shutil.copy(workdir / name, tmp_path / name)
    analyze = ReadmeCommand(0, "mellm analyze onset.jpg apex.jpg --json backbone.params.max_new_tokens=4", "fresh")
    done = subprocess.run(["bash", "-c", analyze.text], cwd=tmp_path, env=_environment(), capture_output=True,
                          text=True, timeout=COMMAND_TIMEOUT_S)
    assert done.returncode == 0, _tail(done.stderr)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["adapter"] is None and "train one with `mellm train" in answer["note"], answer
    _serve(ReadmeCommand(0, "mellm serve quickstart", "fresh"), tmp_path)


def test_every_page_of_docs_is_linked_from_the_readme_and_so_tested() -> None:
    """A page the README does not link would escape this test (and a newcomer)."""
    pages = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")}
    assert pages and pages <= {d.relative_to(ROOT).as_posix() for d in documents()}
    assert len(README.read_bytes()) < 20_000  # what a newcomer needs first; the reference is in docs/

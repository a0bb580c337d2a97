"""Dataset ``megc-vqa``: MEGC ME-VQA's training questions and answers, over the source datasets' clips.

Layout (the challenge's training file beside the source datasets, each read by its own plugin)::

    ROOT/me_vqa_samm_casme2_smic.jsonl   {"id", "dataset", "image_id", "subject", "filename", "question", "answer"}
    ROOT/CASME2/...  ROOT/SAMM/...  ROOT/SMIC/...      (casme2, samm and smic plugins; any may be absent)

Each clip the file names (by ``dataset``, ``subject`` and ``filename``) becomes one sample of its source
dataset, with the file's answers as its labels: the fine-grained class as the emotion (SMIC, asked only the
coarse class, keeps that), the action units named in the AU answer, and the side-question answers as the AUs'
sides. The questions themselves are the ``megc-vqa`` prompt's: train with ``instructions.prompt: megc-vqa``;
answer a test file with ``mellm vqa``. Lines naming a clip no source dataset holds are counted in a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mellm_core import PluginSpec, create, hookimpl
from mellm_core.errors import InputError
from mellm_core.files.jsonlines import read_jsonl
from mellm_core.motion.facs import named_aus
from mellm_core.records import Sample
from mellm_core.text.labels import normalize_emotion
from mellm_core.text.vqa import question_type

SOURCES = ("casme2", "samm", "smic")
COMBINED_ANSWER = re.compile(r"present (?:is|are):\s*(?P<aus>[^.]*)\..*?fine-grained expression class is "
                             r"(?P<fine>[a-z ]+?)(?:,|\.|$)", re.IGNORECASE | re.DOTALL)


@dataclass
class MegcVqaParams:
    train_file: str = "me_vqa_samm_casme2_smic.jsonl"  # the challenge's training file in the root
    casme2_root: str = "CASME2"  # CASME II folder under the root
    samm_root: str = "SAMM"  # SAMM folder under the root
    smic_root: str = "SMIC"  # SMIC folder under the root
    casme2: dict[str, Any] = field(default_factory=dict)  # parameters of the casme2 plugin
    samm: dict[str, Any] = field(default_factory=dict)  # parameters of the samm plugin
    smic: dict[str, Any] = field(default_factory=dict)  # parameters of the smic plugin


def subject_key(subject: str) -> str:
    """A subject as both sides write it: "sub01", "s1", "006" and "6" are all "1" or "6"."""
    return re.sub(r"^(?:sub|s)?0*", "", subject.strip().lower()) or "0"


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of an ME-VQA file; a bad line is an error naming it."""
    if not path.is_file():
        raise InputError(f"ME-VQA file {path} does not exist (set train_file to its name)")

    def problem(line: Any) -> str | None:
        if not isinstance(line, dict):
            return None  # read_jsonl says what it is
        missing = [k for k in ("dataset", "filename", "question", "answer") if k not in line]
        return f"no {', '.join(missing)} (keys found: {', '.join(line)})" if missing else None

    return read_jsonl(path, problem)


class MegcVqa:
    """Reads the ME-VQA training file and its clips from the source datasets; ``warnings`` says what was left."""

    dataset = "megc-vqa"

    def __init__(self, params: MegcVqaParams):
        self.params = params
        self.warnings: list[str] = []

    def _source(self, root: Path, name: str) -> dict[tuple[str, str], Sample]:
        folder = root / getattr(self.params, f"{name}_root")
        if not folder.is_dir():
            return {}
        loader = create("dataset", name, **getattr(self.params, name))
        samples = loader.samples(folder)
        self.warnings.extend(f"{name}: {w}" for w in getattr(loader, "warnings", []))
        return {(subject_key(s.subject), s.clip): s for s in samples}

    def samples(self, root: str | Path) -> list[Sample]:
        root = Path(root)
        self.warnings = []
        lines = read_lines(root / self.params.train_file)
        clips: dict[tuple[str, str, str], list[dict]] = {}
        for line in lines:
            key = (str(line["dataset"]).lower(), subject_key(str(line.get("subject", ""))), str(line["filename"]))
            clips.setdefault(key, []).append(line)
        wanted = sorted({d for d, _, _ in clips} & set(SOURCES))
        sources = {name: self._source(root, name) for name in wanted}
        out, unknown = [], 0
        for (dataset, subject, filename), asked in clips.items():
            sample = sources.get(dataset, {}).get((subject, filename))
            if sample is None:
                unknown += len(asked)
                continue
            out.append(self._labelled(sample, asked))
        if unknown:
            absent = [d for d in wanted if not sources[d]]
            where = f" (no source folder for {', '.join(absent)})" if absent else ""
            self.warnings.append(f"{unknown} of {len(lines)} lines name clips no source dataset holds{where}")
        if not out:
            raise InputError(f"none of the {len(lines)} lines of {root / self.params.train_file} names a clip of the "
                             f"source datasets under {root} (set casme2_root, samm_root, smic_root)")
        return out

    @staticmethod
    def _labelled(sample: Sample, asked: list[dict]) -> Sample:
        """``sample`` with the file's answers as its labels: the class and AU questions' answers, else those the
        combined question's answer states; the side questions' answers as sides. What the file does not say
        about the clip stays as its source dataset says it."""
        answers = {question_type(str(q["question"])): str(q["answer"]).strip() for q in asked}
        combined = answers.get(("combined", None), "")
        stated = COMBINED_ANSWER.search(combined)
        fine = answers.get(("fine", None)) or (stated["fine"] if stated else "")
        emotion = normalize_emotion(fine or answers.get(("coarse", None)) or "")
        if ("aus", None) in answers:
            aus = named_aus(answers[("aus", None)])  # "none" says: no AU
        elif stated:
            aus = named_aus(stated["aus"])
        else:
            aus = sample.aus
        sides = {str(au): answer[0].upper() for (kind, au), answer in answers.items()
                 if kind == "side" and au is not None and answer.lower() in ("left", "right")}
        return replace(sample, emotion=emotion or sample.emotion, aus=sorted(aus), au_sides=sides or sample.au_sides,
                       emotion_raw=fine or sample.emotion_raw)


@hookimpl
def mellm_dataset():
    yield PluginSpec("megc-vqa", MegcVqa, MegcVqaParams,
                     "MEGC ME-VQA training file over the source datasets' clips (CASME II, SAMM, SMIC)")

"""The instructions stage: FGMU instruction data (MEU and MER) from the maps manifest, split for train and test.

Writes ``instructions/train.jsonl``, ``instructions/test.jsonl``, their copies for LLaMA-Factory (with its
``dataset_info.json``), with ``instructions.format: hf`` a Hugging Face datasets folder (``instructions/hf``), and
``instructions/summary.json``; a re-run with an unchanged manifest and settings
rewrites nothing.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import asdict

from mellm_core.config import InstructionsConfig, Recipe, settings_hash, strings
from mellm_core.data.splits import fixed_split, listed_ids, loso_folds, natural_key, subject_key, zero_shot
from mellm_core.errors import InputError, require_package
from mellm_core.files.layout import SUMMARY, RunLayout, up_to_date
from mellm_core.files.stagelock import StageLock
from mellm_core.files.storage import Location
from mellm_core.motion.regions import regions_from_dict
from mellm_core.plugins import get_registry
from mellm_core.records import Instruction, MapRecord, Sample
from mellm_core.summaries import InstructionsSummary, PartCounts
from mellm_core.text.fgmu import analyze
from mellm_core.text.hfdataset import FOLDER as HF_FOLDER
from mellm_core.text.hfdataset import write_hf_dataset
from mellm_core.text.labels import apply_protocol, get_protocol
from mellm_core.text.llamafactory import DATASET_INFO, FILES, llamafactory_files
from mellm_core.text.turns import takes_text, user_turn


def _as_sample(record: MapRecord) -> Sample:
    return Sample(sample_id=record.sample_id, onset_path=record.onset_path, apex_path=record.apex_path,
                  dataset=record.dataset, subject=record.subject, aus=list(record.aus), au_sides=dict(record.au_sides),
                  emotion=record.emotion)


def split_samples(samples: list[Sample], cfg: InstructionsConfig, known: set[str] | None = None
                  ) -> tuple[list[Sample], list[Sample]]:
    """(train, test) by the recipe's split; ``known`` are all ids of the manifest (fixed lists may name ids that
    the protocol excluded or whose map failed: those drop out; an id in no manifest line is an error)."""
    known = known if known is not None else {s.sample_id for s in samples}
    split = cfg.split
    if split.kind == "loso":
        folds = loso_folds(samples)
        names = [name for name, _, _ in folds]
        fold = split.fold or names[0]
        if fold not in names:
            raise InputError(f"instructions.split.fold '{fold}' is not a subject (subjects: {', '.join(names)})")
        _, train, test = folds[names.index(fold)]
        return train, test
    if split.kind == "zero-shot":
        return zero_shot(samples, split.train_datasets, split.test_datasets)
    if split.kind == "fixed":
        missing = [k for k in ("train", "test") if k not in split.lists]
        if missing:
            raise InputError(f"instructions.split.lists needs a '{missing[0]}' id-list file or id pattern")
        present = {s.sample_id for s in samples}  # ids excluded by the protocol or with a failed map drop out
        lists = {k: [i for i in listed_ids(strings(split.lists[k]), known) if i in present or i not in known]
                 for k in ("train", "test")}
        groups = fixed_split(samples, lists)
        return groups["train"], groups["test"]
    subjects = sorted({subject_key(s) for s in samples}, key=natural_key)
    chosen = set(split.test_subjects)
    unknown = sorted(chosen - set(subjects) - {s.subject for s in samples})
    if unknown:
        raise InputError(f"instructions.split.test_subjects names unknown subject '{unknown[0]}'")
    if not chosen:
        step = max(2, round(1 / split.test_fraction))
        chosen = set(subjects[step - 1 :: step])
    test = [s for s in samples if subject_key(s) in chosen or s.subject in chosen]
    train = [s for s in samples if not (subject_key(s) in chosen or s.subject in chosen)]
    return train, test


def build_instructions(
    records: list[MapRecord], cfg: InstructionsConfig, seed: int, min_motion: float
) -> tuple[list[Instruction], list[Instruction], InstructionsSummary]:
    """Train and test instructions plus a summary, from the ok records of a maps manifest."""
    prompt = get_registry().create("prompt", cfg.prompt, **cfg.prompt_params)
    protocol = get_protocol(cfg.protocol)
    ok = {r.sample_id: r for r in records if r.ok}
    kept, excluded = apply_protocol([_as_sample(r) for r in ok.values()], protocol)
    kept = [s for s in kept if s.emotion]
    labels = list(protocol.classes) or sorted({s.emotion for s in kept if s.emotion})
    if not kept:
        raise InputError(f"no labelled samples inside protocol '{protocol.name}' (excluded: {excluded})")
    train, test = split_samples(kept, cfg, {r.sample_id for r in records})
    for name, part in (("training", train), ("test", test)):
        if not part:
            raise InputError(f"the {cfg.split.kind} split leaves the {name} set empty ({len(kept)} samples from "
                             f"{len({subject_key(s) for s in kept})} subjects); adjust instructions.split")
    rng = random.Random(seed)

    text = takes_text(prompt)  # the flow as text: no image

    def row(sample: Sample, task: str, question: str, target: str) -> Instruction:
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": target}]
        return Instruction(messages, [] if text else [str(ok[sample.sample_id].map_path)], task, str(sample.emotion),
                           list(sample.aus), sample.sample_id, sample.dataset, sample.subject)

    def make(sample: Sample, task: str) -> Instruction:
        record, emotion = ok[sample.sample_id], str(sample.emotion)  # kept samples all have one
        regions = regions_from_dict(record.regions or {})
        if task == "meu":
            target = prompt.meu_target(analyze(regions, sample.aus, sample.au_sides, emotion, min_motion))
        else:
            target = prompt.mer_target(emotion)
        return row(sample, task, user_turn(prompt, task, labels, regions), target)

    def analysis_rows(sample: Sample) -> list[Instruction]:
        """A training sample's analysis rows: one per question a prompt with ``questions`` asks about it (megc-vqa:
        every ME-VQA question type), else its MEU row."""
        if not hasattr(prompt, "questions"):
            return [make(sample, "meu")]
        return [row(sample, "meu", question, target) for question, target in prompt.questions(sample)]

    train_rows = [r for s in train for r in analysis_rows(s)] if "meu" in cfg.train_tasks else []
    if "mer" in cfg.train_tasks:
        train_rows += [make(s, "mer") for s in rng.sample(train, round(cfg.mer_ratio * len(train)))]
    rng.shuffle(train_rows)
    test_rows = [make(s, task) for s in test for task in cfg.test_tasks]
    summary = InstructionsSummary(
        prompt=cfg.prompt, protocol=protocol.name, labels=labels, split=cfg.split.kind,
        train=PartCounts(len(train), len(train_rows), dict(Counter(r.task for r in train_rows))),
        test=PartCounts(len(test), len(test_rows), dict(Counter(r.task for r in test_rows))),
        train_subjects=sorted({subject_key(s) for s in train}, key=natural_key),
        test_subjects=sorted({subject_key(s) for s in test}, key=natural_key),
        per_emotion=dict(Counter(str(s.emotion) for s in kept).most_common()),
        excluded=excluded, failed_maps=len(records) - len(ok))
    return train_rows, test_rows, summary


def run_instructions(recipe: Recipe, manifest: str | Location | None = None, out_dir: str | Location | None = None
                     ) -> InstructionsSummary:
    """Write train/test instructions for a recipe from its maps manifest; skip when nothing changed."""
    manifest = Location(manifest) if manifest else RunLayout(recipe.output_dir).manifest
    out = Location(out_dir) if out_dir else RunLayout(recipe.output_dir).instructions
    with StageLock(out, "instructions"):  # one writer per folder
        return _write_instructions(recipe, manifest, out)


def _write_instructions(recipe: Recipe, manifest: Location, out: Location) -> InstructionsSummary:
    if recipe.instructions.format == "hf":
        require_package("datasets", "instructions.format: hf", "mellm[hf]")
    if not manifest.is_file():
        raise InputError(f"maps manifest {manifest} does not exist; run `mellm maps` first")
    data = manifest.read_bytes()
    lists = {k: [Location(v).read_text() if Location(v).is_file() else None for v in strings(entries)]
             for k, entries in recipe.instructions.split.lists.items()}
    digest = settings_hash(hashlib.sha256(data).hexdigest(), asdict(recipe.instructions), lists, recipe.seed,
                           recipe.maps.min_motion)
    previous = out / SUMMARY
    hf = [out / HF_FOLDER / "dataset_dict.json"] if recipe.instructions.format == "hf" else []
    if up_to_date(previous, digest, out / "train.jsonl", out / "test.jsonl", out / DATASET_INFO,
                  *(out / name for name in FILES.values()), *hf):
        return InstructionsSummary.read(previous)
    records = [MapRecord.from_json(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    train, test, summary = build_instructions(records, recipe.instructions, recipe.seed, recipe.maps.min_motion)
    out.mkdir()
    previous.unlink()  # first: a run killed while rewriting the files never leaves them looking up to date
    for name, rows in (("train.jsonl", train), ("test.jsonl", test)):
        (out / name).write_text("".join(r.to_json() + "\n" for r in rows))
    for name, text in llamafactory_files({"train": train, "test": test}, str(out.resolve())).items():
        (out / name).write_text(text)
    if hf:
        write_hf_dataset({"train": train, "test": test}, out / HF_FOLDER)
    summary.settings_hash, summary.out_dir = digest, str(out)
    summary.write(previous)
    return summary

"""Scoring records on a protocol and the ``mellm score`` command, end to end on temporary files."""

from __future__ import annotations

import argparse
import json

import pytest
from sklearn.metrics import f1_score, recall_score

from mellm_core.cli.score import register_score
from mellm_core.errors import InputError, MellmError
from mellm_core.plugins import Registry
from mellm_core.text.scoring import predict, record_problem, score

EN = "Reasoning: AU4 hints at anger.\nFinal conclusion:\nAUs: {aus}. Micro-expression: {emotion}."
ZH = "推理：AU4 像是愤怒。\n最终结论：\nAU：{aus}。微表情：{emotion}。"

RECORDS = [
    {"id": 1, "label": "happiness", "text": EN.format(aus="AU6 + AU12", emotion="happiness"), "aus": [6, 12]},
    {"id": 2, "label": "Happiness", "text": ZH.format(aus="AU6", emotion="高兴"), "aus": "6+12"},
    {"id": 3, "label": "fear", "text": EN.format(aus="AU1 + AU2", emotion="surprise"), "aus": [1, 2, 4]},
    {"id": 4, "label": "fear", "text": "I cannot tell.", "aus": [1, 4]},
    {"id": 5, "label": "surprise", "emotion": "Surprised"},
    {"id": 6, "label": "repression", "text": "Micro-expression: repression"},
    {"id": 7, "label": "disgust", "text": "Final conclusion: the micro-expression is anger."},
]


def run_score(argv: list[str]) -> int:
    """Run ``mellm score`` through its own argument parser (the command is wired into ``mellm`` elsewhere)."""
    parser = argparse.ArgumentParser(prog="mellm")
    register_score(parser.add_subparsers())
    args = parser.parse_args(["score", *argv])
    return args.func(args)


def write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return str(path)


def test_score_on_a_protocol():
    result = score(RECORDS, "dfme-7", registry=Registry())
    # repression is outside DFME's classes; anger is a DFME class but absent from the gold labels: last column
    assert (result["n"], result["excluded"], result["unparsed"]) == (6, 1, 1)
    assert result["labels"] == ["happiness", "disgust", "surprise", "fear"]
    assert result["confusion_matrix"] == [[2, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 1, 0, 0], [0, 0, 1, 0, 1]]
    y_true = ["happiness", "happiness", "fear", "fear", "surprise", "disgust"]
    y_pred = ["happiness", "happiness", "surprise", "-", "surprise", "-"]
    assert result["acc"] == pytest.approx(3 / 6)
    assert result["uar"] == pytest.approx(recall_score(y_true, y_pred, average="macro", labels=result["labels"],
                                                       zero_division=0))
    assert result["uf1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", labels=result["labels"],
                                                   zero_division=0))
    # gold AUs on records 1-4: AU1 1/(1+1)... per AU: 1 -> 2/3, 2 -> 1, 4 -> 0, 6 -> 1, 12 -> 2/3
    assert result["au_f1_per_au"] == pytest.approx({"1": 2 / 3, "2": 1.0, "4": 0.0, "6": 1.0, "12": 2 / 3})
    assert result["au_f1"] == pytest.approx((2 / 3 + 1 + 0 + 1 + 2 / 3) / 5)


def test_protocol_all_uses_the_gold_classes_and_recognizes_their_names():
    result = score(RECORDS, "all", registry=Registry())
    assert result["labels"] == ["disgust", "fear", "happiness", "repression", "surprise"]
    assert result["excluded"] == 0 and result["n"] == 7
    assert result["confusion_matrix"][3] == [0, 0, 0, 1, 0, 0]  # "repression" parsed as itself
    # a label that normalizes to nothing is excluded, not a crash
    assert score([*RECORDS, {"label": " . ", "text": "fear"}], "all", registry=Registry())["excluded"] == 1


def test_megc_maps_gold_by_dataset_and_predictions_by_class():
    records = [
        {"id": "c1", "label": "repression", "dataset": "casme2", "text": "Conclusion: disgust"},
        {"id": "c2", "label": "happiness", "dataset": "casme2", "text": "结论：积极"},
        {"id": "s1", "label": "fear", "dataset": "samm", "text": "Conclusion: the micro-expression is negative."},
        {"id": "m1", "label": "surprise", "dataset": "smic", "text": "Conclusion: happiness"},
    ]
    result = score(records, "megc-3", registry=Registry())
    assert result["labels"] == ["negative", "positive", "surprise"]
    assert result["confusion_matrix"] == [[2, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0]]
    assert result["acc"] == 3 / 4 and "au_f1" not in result


def test_a_third_party_metric_plugin_joins_the_result():
    from mellm_core import PluginSpec, hookimpl

    def outside(y_true: list, y_pred: list, labels: list) -> float:
        return float(sum(p not in labels for p in y_pred))

    class Plugin:
        @hookimpl
        def mellm_metric(self):
            yield PluginSpec("outside", lambda: outside)

    registry = Registry()
    registry.register(Plugin())
    assert score(RECORDS, "dfme-7", registry=registry)["outside"] == 2.0  # records 4 (unparsed) and 7 (anger)


@pytest.mark.parametrize(("record", "problem"), [
    ([1, 2], "expected a JSON object"),
    ({"text": "fear"}, "missing field 'label'"),
    ({"label": "", "text": "fear"}, "field 'label' must be a non-empty string"),
    ({"label": "fear"}, "missing field 'text'"),
    ({"label": "fear", "text": 3}, "field 'text' must be a string, got int"),
    ({"label": "fear", "text": "x", "aus": [6, 100]}, "field 'aus' must be a list of AU numbers"),
    ({"label": "fear", "emotion": "fear", "pred_aus": "6"}, None),
])
def test_record_problems_are_named(record, problem):
    found = record_problem(record)
    assert found is None if problem is None else problem in found


def test_bad_records_and_empty_protocols_raise_clear_errors():
    with pytest.raises(InputError, match=r"record 2 \(id 'b'\): missing field 'label'"):
        predict([{"label": "fear", "text": ""}, {"id": "b", "text": ""}])
    with pytest.raises(InputError, match="none of the 1 records has a gold label in protocol 'casme2-5'"):
        score([{"label": "contempt", "text": "contempt"}], "casme2-5", registry=Registry())
    with pytest.raises(MellmError, match="unknown label protocol 'dfme7'"):
        score(RECORDS, "dfme7", registry=Registry())


def test_score_command_json_and_per_sample(tmp_path, capsys):
    source = write_jsonl(tmp_path / "preds.jsonl", RECORDS)
    per_sample = tmp_path / "parsed.jsonl"
    assert run_score([source, "--protocol", "dfme-7", "--per-sample", str(per_sample), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(score(RECORDS, "dfme-7", registry=Registry())))
    lines = [json.loads(line) for line in per_sample.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(RECORDS)
    assert lines[1] == {"id": 2, "label": "Happiness", "emotion": "happiness", "aus": [6]}
    assert lines[3] == {"id": 4, "label": "fear", "emotion": None, "aus": []}
    assert lines[4] == {"id": 5, "label": "surprise", "emotion": "surprise", "aus": []}


def test_score_command_prints_a_table(tmp_path, capsys):
    source = write_jsonl(tmp_path / "preds.jsonl", RECORDS)
    assert run_score([source, "--protocol", "dfme-7"]) == 0
    out = capsys.readouterr().out
    assert "protocol dfme-7: 6 scored, 1 unparsed, 1 excluded" in out
    assert "  acc      0.5000" in out and "uf1" in out and "au_f1" in out
    header = next(line for line in out.splitlines() if line.strip().startswith("happiness"))
    assert header.split() == ["happiness", "disgust", "surprise", "fear", "other"]


@pytest.mark.parametrize(("content", "message"), [
    ('{"label": "fear", "text": "fear"}\n\n{"label": "fear", "text": \n', r"preds.jsonl:3: not valid JSON"),
    ('{"label": "fear", "text": "fear"}\n{"id": 2, "text": "fear"}\n', r"preds.jsonl:2: missing field 'label'"),
    ('"just a string"\n', r"preds.jsonl:1: expected a JSON object"),
    ("\n\n", r"preds.jsonl holds no records"),
])
def test_score_command_names_file_and_line_of_bad_input(tmp_path, content, message):
    path = tmp_path / "preds.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        run_score([str(path)])


def test_score_command_names_a_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read .*missing.jsonl"):
        run_score([str(tmp_path / "missing.jsonl")])

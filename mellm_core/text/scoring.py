"""Score predictions against gold labels on a label protocol with every installed metric plugin (pure, no Ray).

Lines of ``eval/predictions.jsonl`` score as they are (gold AUs in ``aus_gold``, predicted ones in ``aus``).

A record is a mapping with ``label`` (the gold emotion), ``text`` (the model's output, parsed with
``parse_output``) or an already parsed ``emotion``, and optionally ``id``, ``aus`` (gold AUs: a list of numbers or
a FACS string such as "6+12"), ``pred_aus`` (predicted AUs, for records given as ``emotion`` without ``text``) and
``dataset`` (the source dataset, which MEGC's composite classes depend on).

Gold labels and predictions are both mapped to the protocol's classes (predictions without dataset-specific rules,
so "disgust" is "negative" under ``megc-3``); records whose gold label falls outside the protocol are excluded.
A metric plugin's ``target`` attribute says what it scores: "emotion" (the default) is called as
``metric(y_true, y_pred, labels)`` with class names (None for an unparsed prediction) and the classes present
in the gold labels; "aus" is called as ``metric(gold_aus, pred_aus, labels)`` with one list of AU numbers per
sample and the AUs present in the gold labels, and may offer ``per_label(...) -> {au: value}``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mellm_core.errors import InputError
from mellm_core.plugins import Registry, get_registry
from mellm_core.text.labels import LabelProtocol, get_protocol, normalize_emotion, parse_aus
from mellm_core.text.parse import parse_output

OTHER = "unparsed/other"  # the confusion matrix's last column: no emotion found, or one outside the classes


@dataclass(frozen=True)
class ClassCounts:
    """One class's true positives, false positives and false negatives."""

    tp: int
    fp: int
    fn: int


def check_pairs(y_true: Sequence[Any], y_pred: Sequence[Any]) -> None:
    """Raise ValueError unless gold and predicted sequences have one item per sample each."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}; give one per sample")


def class_counts(y_true: Sequence[Hashable], y_pred: Sequence[Hashable | None],
                 labels: Sequence[Hashable]) -> list[ClassCounts]:
    """TP, FP and FN of each class in ``labels``, counted over all samples as scikit-learn counts them.

    A prediction outside ``labels`` (None included) is a false negative of its gold class and nobody's false
    positive; a gold label outside ``labels`` still makes a prediction of a listed class a false positive.
    """
    check_pairs(y_true, y_pred)
    true = Counter(y_true)
    pred = Counter(y_pred)
    hits = Counter(t for t, p in zip(y_true, y_pred, strict=True) if p is not None and t == p)
    return [ClassCounts(hits[c], pred[c] - hits[c], true[c] - hits[c]) for c in labels]


def confusion_matrix(y_true: Sequence[Hashable], y_pred: Sequence[Hashable | None],
                     labels: Sequence[Hashable]) -> list[list[int]]:
    """Counts with rows = gold class in ``labels`` order, columns = predicted class in ``labels`` order plus a last
    column for predictions outside ``labels`` (None included); samples whose gold class is not listed are skipped.
    """
    check_pairs(y_true, y_pred)
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * (len(labels) + 1) for _ in labels]
    for t, p in zip(y_true, y_pred, strict=True):
        if t in index:
            matrix[index[t]][index.get(p, len(labels))] += 1
    return matrix


@dataclass(frozen=True)
class Scored:
    """One record read: its id, gold label as given, predicted emotion and AUs, gold AUs (None: not given)."""

    id: Any
    label: str
    emotion: str | None
    aus: list[int]
    gold_aus: list[int] | None
    dataset: str = ""

    def per_sample(self) -> dict[str, Any]:
        """The per-sample output line: id, gold label, predicted emotion (normalized) and predicted AUs."""
        return {"id": self.id, "label": self.label, "emotion": self.emotion, "aus": self.aus}


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _aus_problem(record: Mapping[str, Any], key: str) -> str | None:
    value = record.get(key)
    if key not in record or isinstance(value, str):
        return None
    if isinstance(value, list) and all(type(au) is int and 1 <= au <= 99 for au in value):
        return None
    return (f"field '{key}' must be a list of AU numbers 1..99 like [6, 12] or a FACS string like \"6+12\","
            f" got {value!r}")


def record_problem(record: object) -> str | None:
    """What is wrong with one input record (one sentence), or None when it can be scored."""
    if not isinstance(record, Mapping):
        return f"expected a JSON object with \"label\" and \"text\", got {_kind(record)}"
    label = record.get("label")
    if "label" not in record:
        return "missing field 'label' (the gold emotion)"
    if not isinstance(label, str) or not label.strip():
        return f"field 'label' must be a non-empty string, got {label!r}"
    if "text" not in record and "emotion" not in record:
        return "missing field 'text' (the model's output) or 'emotion' (an already parsed prediction)"
    for key, allowed in (("text", (str,)), ("emotion", (str, type(None))), ("dataset", (str,))):
        if key in record and not isinstance(record[key], allowed):
            return f"field '{key}' must be a string, got {_kind(record[key])}"
    return _aus_problem(record, "aus") or _aus_problem(record, "pred_aus") or _aus_problem(record, "aus_gold")


def _au_list(value: list[int] | str) -> list[int]:
    return parse_aus(value)[0] if isinstance(value, str) else sorted(set(value))


def _scored(record: Mapping[str, Any], index: int, vocabulary: Sequence[str]) -> Scored:
    parsed = parse_output(record["text"], vocabulary) if "text" in record else None
    emotion = normalize_emotion(record["emotion"]) if "emotion" in record or parsed is None else parsed.emotion
    aus = parsed.aus if parsed is not None else _au_list(record.get("pred_aus", []))
    gold_aus = _au_list(record["aus"]) if "aus" in record else None
    if "aus_gold" in record:  # a line of eval/predictions.jsonl: gold AUs in aus_gold, predicted ones in aus
        gold_aus, aus = _au_list(record["aus_gold"]), _au_list(record.get("aus", []))
    ident = record.get("id", record.get("sample_id", index))
    return Scored(ident, record["label"], emotion, aus, gold_aus, record.get("dataset", ""))


def predict(records: Iterable[Mapping[str, Any]], protocol: str | LabelProtocol = "all") -> list[Scored]:
    """Check and read every record, parsing texts with the protocol's classes as extra vocabulary (for ``all``,
    the gold labels present); a bad record raises InputError naming its position and id.
    """
    records = list(records)
    for index, record in enumerate(records, 1):
        problem = record_problem(record)
        if problem:
            where = f" (id {record['id']!r})" if isinstance(record, Mapping) and "id" in record else ""
            raise InputError(f"record {index}{where}: {problem}")
    chosen = get_protocol(protocol)
    vocabulary = chosen.classes or sorted({e for r in records if (e := normalize_emotion(r["label"])) is not None})
    return [_scored(record, index, vocabulary) for index, record in enumerate(records, 1)]


def _au_results(metrics: dict[str, Any], rows: list[Scored]) -> dict[str, Any]:
    """Each AU metric over the rows with gold AUs (and its per-AU values as ``<name>_per_au``)."""
    rows = [row for row in rows if row.gold_aus is not None]
    if not rows:
        return {}
    gold, pred = [row.gold_aus or [] for row in rows], [row.aus for row in rows]
    labels = sorted({au for aus in gold for au in aus})
    result: dict[str, Any] = {}
    for name, metric in metrics.items():
        result[name] = metric(gold, pred, labels)
        if hasattr(metric, "per_label"):
            result[f"{name}_per_au"] = {str(au): value for au, value in metric.per_label(gold, pred, labels).items()}
    return result


def graded(protocol: LabelProtocol, gold: str | None, predicted: str | None,
           dataset: str = "") -> tuple[str | None, str | None]:
    """The gold and the predicted class under ``protocol`` (None: gold outside the protocol, or nothing parsed).
    The one rule of right and wrong: the metrics and the report's gallery both read it."""
    return protocol.label(normalize_emotion(gold), dataset), protocol.label(predicted) if predicted else None


def correct(protocol: LabelProtocol, gold: str | None, predicted: str | None, dataset: str = "") -> bool:
    """Whether a prediction counts as right under ``protocol`` (see ``graded``)."""
    gold_class, predicted_class = graded(protocol, gold, predicted, dataset)
    return gold_class is not None and predicted_class == gold_class


def score_rows(rows: Sequence[Scored], protocol: str | LabelProtocol = "all", registry: Registry | None = None) -> dict:
    """Metrics of already read records: every metric plugin by name, then n, unparsed, excluded, labels (the
    classes present in the gold labels, in protocol order) and confusion_matrix (see ``confusion_matrix``).
    """
    chosen = get_protocol(protocol)
    registry = registry or get_registry()
    kept: list[tuple[Scored, str, str | None]] = []  # (row, gold class, predicted class)
    for row in rows:
        gold, predicted = graded(chosen, row.label, row.emotion, row.dataset)
        if gold is not None:
            kept.append((row, gold, predicted))
    if not kept:
        classes = ", ".join(chosen.classes)
        raise InputError(f"nothing to score: none of the {len(rows)} records has a gold label in protocol"
                         f" '{chosen.name}' ({classes})")
    y_true = [gold for _, gold, _ in kept]
    y_pred = [predicted for _, _, predicted in kept]
    present = set(y_true)
    labels = [c for c in chosen.classes if c in present] if chosen.classes else sorted(present)
    result: dict[str, Any] = {}
    au_metrics: dict[str, Any] = {}
    for name in registry.names("metric"):
        metric = registry.create("metric", name)
        if getattr(metric, "target", "emotion") == "aus":
            au_metrics[name] = metric
        else:
            result[name] = metric(y_true, y_pred, labels)
    result.update(
        n=len(kept), unparsed=sum(row.emotion is None for row, _, _ in kept), excluded=len(rows) - len(kept),
        protocol=chosen.name, labels=labels, confusion_matrix=confusion_matrix(y_true, y_pred, labels),
    )
    result.update(_au_results(au_metrics, [row for row, _, _ in kept]))
    return result


def score(records: Iterable[Mapping[str, Any]], protocol: str | LabelProtocol = "all",
          registry: Registry | None = None) -> dict:
    """Read, parse and score records (see the module docstring): ``score(lines, "dfme-7")["uf1"]``."""
    return score_rows(predict(records, protocol), protocol, registry)

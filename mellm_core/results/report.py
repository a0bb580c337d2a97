"""``eval/report.html``: one self-contained page (images embedded) with metrics, plots, chance and a gallery.

Readable in a browser from disk: the confusion matrix and the per-class recall are PNG plots (matplotlib), the
gallery shows sample MMC-maps with gold labels, the model's analysis and the parsed result, right and wrong cases
side by side.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import cv2
import numpy as np

from mellm_core.errors import InputError
from mellm_core.files.frames import read_rgb
from mellm_core.files.storage import Location
from mellm_core.summaries import EvalResult, TaskMetrics
from mellm_core.text.labels import LabelProtocol, get_protocol
from mellm_core.text.scoring import correct

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}.cols{display:flex;gap:2em;flex-wrap:wrap}
.gallery{display:grid;grid-template-columns:1fr 1fr;gap:1em}
.card{border:1px solid #ddd;padding:.6em;display:flex;gap:.8em}
.card img{width:160px;height:auto;image-rendering:pixelated}
.ok{border-left:6px solid #2a2}.bad{border-left:6px solid #c33}.verdict{padding-left:.5em}
pre{white-space:pre-wrap;font-size:12px;max-height:14em;overflow:auto;margin:.3em 0}.muted{color:#777}
"""


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _plots(overall: dict[str, Any], chance_uar: float) -> tuple[str, str]:
    """The confusion matrix and the per-class recall bars (with the chance line) as base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, cm = overall["labels"], np.array(overall["confusion_matrix"])
    columns = [*labels, "unparsed/other"]
    fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 2, 0.9 * len(labels) + 2))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    confusion = _png(fig)
    plt.close(fig)
    recall = [row[i] / max(1, sum(row)) for i, row in enumerate(cm.tolist())]
    fig, ax = plt.subplots(figsize=(0.8 * len(labels) + 2, 3))
    ax.bar(labels, recall, color="#4a7")
    ax.axhline(chance_uar, color="#c33", linestyle="--", label=f"chance {chance_uar:.2f}")
    ax.set_ylim(0, 1)
    ax.set_ylabel("recall")
    ax.legend()
    ax.tick_params(axis="x", rotation=45)
    bars = _png(fig)
    plt.close(fig)
    return confusion, bars


def _thumbnail(path: str) -> str | None:
    try:
        image = cv2.cvtColor(read_rgb(path), cv2.COLOR_RGB2BGR)
    except InputError:
        return None
    ok, png = cv2.imencode(".png", image)
    return base64.b64encode(png.tobytes()).decode() if ok else None


def _metric_rows(block: TaskMetrics) -> list[tuple[str, dict[str, Any]]]:
    return [("overall", block.overall), *sorted(block.per_dataset.items())]


def _table(task: str, block: TaskMetrics) -> str:
    names = [k for k in ("acc", "uf1", "uar", "au_f1") if k in block.overall]
    head = "".join(f"<th>{n.upper()}</th>" for n in names)
    rows = []
    for name, result in _metric_rows(block):
        cells = "".join(f"<td>{result[n]:.4f}</td>" if n in result else "<td>-</td>" for n in names)
        rows.append(f"<tr><td>{html.escape(name)}</td>{cells}<td>{result['n']}</td><td>{result['unparsed']}</td></tr>")
    chance = block.chance
    major = chance["majority"]
    rows.append(f"<tr class='muted'><td>chance: uniform guess</td><td>{chance['uniform']['acc']:.4f}</td>"
                + "".join("<td>-</td>" if n != "uar" else f"<td>{chance['uniform']['uar']:.4f}</td>"
                          for n in names[1:]) + "<td></td><td></td></tr>")
    rows.append(f"<tr class='muted'><td>chance: always '{html.escape(major['class'])}'</td>"
                + "".join(f"<td>{major[n]:.4f}</td>" if n in major else "<td>-</td>" for n in names)
                + "<td></td><td></td></tr>")
    if "majority_aus" in chance:
        aus = "+".join(map(str, chance["majority_aus"]["aus"])) or "none"
        rows.append(f"<tr class='muted'><td>chance: always AU {html.escape(aus)} (the training set's most frequent)"
                    "</td>" + "".join(f"<td>{chance['majority_aus']['au_f1']:.4f}</td>" if n == "au_f1"
                                      else "<td>-</td>" for n in names) + "<td></td><td></td></tr>")
    table = f"<table><tr><th></th>{head}<th>n</th><th>unparsed</th></tr>{''.join(rows)}</table>"
    return table + "".join(f"<p class='{'bad' if 'NOT' in line or 'warning' in line else 'ok'} verdict'>"
                           f"{html.escape(line)}</p>" for line in block.verdict_lines(task))


def _card(pred: dict[str, Any], ok: bool, head: list[float] | None) -> str:
    thumb = _thumbnail(pred.get("map_path", ""))
    image = f"<img alt='MMC-map' src='data:image/png;base64,{thumb}'>" if thumb else "<div>(map missing)</div>"
    gold_aus = "+".join(str(a) for a in pred.get("aus_gold") or []) or "none"
    pred_aus = "+".join(str(a) for a in pred.get("aus") or []) or "none"
    text = pred.get("error") or pred.get("text") or ""
    moved = ("" if head is None else
             f"<br><span class='muted'>head motion removed: ({head[0]:+.2f}, {head[1]:+.2f}) px</span>")
    return (f"<div class='card {'ok' if ok else 'bad'}'>{image}<div><b>{html.escape(pred['sample_id'])}</b> "
            f"<span class='muted'>({html.escape(pred['task'])})</span><br>gold: {html.escape(str(pred['label']))} "
            f"(AU {gold_aus})<br>parsed: {html.escape(str(pred.get('emotion')))} (AU {pred_aus}){moved}"
            f"<pre>{html.escape(text)}</pre></div></div>")


def _correct(pred: dict[str, Any], protocol: LabelProtocol) -> bool:
    return correct(protocol, pred["label"], pred.get("emotion"), pred.get("dataset", ""))


def write_report(path: str | Location, preds: list[dict[str, Any]], metrics: EvalResult, gallery: int,
                 title: str = "evaluation", head_motion: dict[str, list[float]] | None = None) -> None:
    """Write the report page for predictions and their metrics (see the module docstring); ``head_motion``
    (sample id -> the head motion its map removed, at the nose tip) is shown on the gallery's cards."""
    protocol = get_protocol(metrics.protocol)
    heads = head_motion or {}
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>protocol <b>{html.escape(metrics.protocol)}</b>; model {html.escape(metrics.model)}"
             f"; adapter {html.escape(str(metrics.adapter))}</p>"]
    for task, block in metrics.tasks.items():
        overall = block.overall
        confusion, bars = _plots(overall, block.chance["uniform"]["uar"])
        parts.append(f"<h2>task {html.escape(task)}</h2>{_table(task, block)}<div class='cols'>"
                     f"<img alt='confusion matrix' src='data:image/png;base64,{confusion}'>"
                     f"<img alt='per-class recall' src='data:image/png;base64,{bars}'></div>")
        mine = [p for p in preds if p["task"] == task]
        right = [p for p in mine if _correct(p, protocol)][: (gallery + 1) // 2]
        wrong = [p for p in mine if not _correct(p, protocol)][: gallery // 2]
        cards = []
        for i in range(max(len(right), len(wrong))):
            for side, ok in ((right, True), (wrong, False)):
                pred = side[i] if i < len(side) else None
                cards.append(_card(pred, ok, heads.get(pred["sample_id"])) if pred else "<div></div>")
        parts.append(f"<h3>gallery: right (left) and wrong (right)</h3><div class='gallery'>{''.join(cards)}</div>")
    parts.append("</body></html>")
    Location(path).write_text("".join(parts))

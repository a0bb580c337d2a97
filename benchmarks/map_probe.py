"""How much of the emotion the MMC-maps hold: linear classifiers on the maps of a finished demo folder.

The demo's tiny Qwen2.5-VL reads the maps from scratch; this script asks how far a plain linear reader gets on the
same training maps and held-out subjects, with and without knowing where each colour is, so that the model's
figure can be read against what the maps allow:

    mellm demo --out runs/demo                 # any demo folder with instructions/ (one per seed)
    python benchmarks/map_probe.py runs/demo [runs/demo-seed1 ...]

Readers (scikit-learn logistic regression on standardized features, C = 0.1): ``grid 7x7`` and ``grid 14x14``
(the map's mean colour in each cell of a 7x7 grid, as many cells as the demo's image tokens, or 14x14, as many
as its patches; the colours and where they are) and ``colours only`` (a histogram of the 14x14 cells' colours over
32 k-means clusters fitted on the training maps; the colours without where they are). Scores are held-out MER
accuracy beside always-the-majority-class.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from table import print_table

from mellm_core.files.layout import RunLayout


def _cells(rows: list[dict], side: int) -> np.ndarray:
    """Each map's mean colour per cell of a side x side grid, as (maps, side*side, 3) in [0, 1]."""
    maps = [cv2.imread(r["images"][0]) for r in rows]
    return np.array([cv2.resize(m, (side, side), interpolation=cv2.INTER_AREA).reshape(-1, 3) / 255 for m in maps])


def _accuracy(train: np.ndarray, y_train: list[str], test: np.ndarray, y_test: list[str]) -> float:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000)).fit(train, y_train)
    return float(np.mean(model.predict(test) == np.array(y_test)))


def probe(folder: Path) -> list[object]:
    layout = RunLayout(folder)
    rows = {part: [r for r in map(json.loads, path.read_text().splitlines()) if r["task"] == "mer"]
            for part, path in (("train", layout.train_rows), ("test", layout.test_rows))}
    if not rows["train"] or not rows["test"]:
        raise SystemExit(f"{folder}/instructions holds no MER rows: build it with the demo recipe")
    y = {part: [r["label"] for r in part_rows] for part, part_rows in rows.items()}
    scores = []
    for side in (7, 14):
        cells = {part: _cells(part_rows, side) for part, part_rows in rows.items()}
        scores.append(_accuracy(cells["train"].reshape(len(y["train"]), -1), y["train"],
                                cells["test"].reshape(len(y["test"]), -1), y["test"]))
    clusters = KMeans(32, n_init=3, random_state=0).fit(cells["train"].reshape(-1, 3))
    bags = {part: np.array([np.bincount(clusters.predict(c), minlength=32) for c in part_cells])
            for part, part_cells in cells.items()}
    scores.append(_accuracy(bags["train"], y["train"], bags["test"], y["test"]))
    majority = max(y["test"].count(label) for label in set(y["test"])) / len(y["test"])
    return [folder.name, len(y["train"]), len(y["test"]), *(f"{s:.2f}" for s in scores), f"{majority:.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="demo output folders with instructions/ built")
    args = parser.parse_args()
    print_table("held-out MER accuracy of linear readers of the maps",
                ["folder", "train", "test", "grid 7x7", "grid 14x14", "colours only", "majority"],
                [probe(folder) for folder in args.folders])


if __name__ == "__main__":
    main()

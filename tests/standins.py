"""Stand-ins of the datasets' releases: small fake trees in each release's layout, with its spreadsheet quirks
(the dataset loaders' tests and the Table II recipe's end-to-end test read them)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np
import openpyxl

from mellm_core.motion.warp import similarity_flow, warp_forward


def _texture(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, (size, size, 3)).astype(np.float32), (0, 0), 2.0)
    return cv2.normalize(noise, None, 0, 255, cv2.NORM_MINMAX)


def _bump(size: int, sigma: float) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(size), np.arange(size))
    g = np.exp(-((xs - size / 2) ** 2 + (ys - size / 2) ** 2) / (2 * sigma**2))
    return np.stack([g, -g], axis=-1).astype(np.float32)


def write_frames(
    folder: Path,
    numbers: Iterable[int],
    name: Callable[[int], str] = lambda n: f"img{n}.jpg",
    peak: int | None = None,
) -> None:
    """Frames ``numbers`` in ``folder``. With ``peak``, a local movement peaks at that frame while the whole
    image drifts further and further (so only a head-motion-aware apex search finds the peak)."""
    folder.mkdir(parents=True, exist_ok=True)
    numbers = list(numbers)
    size = 96 if peak is not None else 24
    base = _texture(size)
    for i, n in enumerate(numbers):
        image = base
        if peak is not None:
            amount = 2.5 * max(0.0, 1 - abs(n - peak) / max(peak - numbers[0], 1))
            drift = similarity_flow((size, size), 3.0 * i / (len(numbers) - 1), 0.0)
            image = warp_forward(base, drift + amount * _bump(size, 12.0))
        cv2.imwrite(str(folder / name(n)), np.clip(image, 0, 255).astype(np.uint8))


def write_sheet(path: Path, rows: list[list], title: str = "Sheet1", before: list[list] = ()) -> Path:
    """An .xlsx with optional rows above the table (SAMM's notes block) and the given sheet title."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = title
    for row in [*before, *rows]:
        sheet.append(row)
    book.save(path)
    return path


CASME2_HEADER = [
    "Subject",
    "Filename",
    None,
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    None,
    "Action Units",
    "Estimated Emotion",
]
CASME2_ROWS = [
    [1, "EP02_01f", None, 46, 59, 86, None, "4+7", "disgust"],
    [1, "EP03_02", None, 10, "/", 20, None, "R12", "happiness"],
    [2, "EP01_11f", None, 5, 8, 12, None, "1+2+L12", "Repression"],
    [12, "EP09_10", None, 100, 120, 140, None, "4+9+ R10", "others"],
    [3, "EP13_04", None, 1, 3, 9, None, "12+ 17", "Happiness"],
]


def build_casme2(root: Path, frames_dir: str = "CASME2_RAW_selected", rows: list[list] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_sheet(root / "CASME2-coding-20140508.xlsx", [CASME2_HEADER, *(rows or CASME2_ROWS)])
    frames = root / frames_dir
    write_frames(frames / "sub01" / "EP02_01f", [46, 59, 86])
    write_frames(frames / "sub01" / "EP03_02", range(10, 21), peak=15)
    write_frames(frames / "sub02" / "EP01_11f", [5, 8, 12], lambda n: f"reg_img{n}.jpg")
    write_frames(frames / "sub12" / "EP09_10", [100, 120], lambda n: f"{n}.jpg")
    write_frames(frames / "sub03" / "EP13_04", [1, 3], lambda n: f"{n:03d}.png")
    return root


CASME3_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
CASME3_ROWS = [
    ["spNO.1", "a", 355, 360, 370, "L4+R4", 3, "disgust"],
    ["spNO.1", "a", 500, 505, 512, "12", 1, "happy"],
    ["spNO.2", "f", 10, 14, 20, "1+2", 2, "sad"],
]


def build_casme3(root: Path, first_sheet: str = "label") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = write_sheet(
        root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", [CASME3_HEADER, *CASME3_ROWS], first_sheet
    )
    write_frames(
        root / "spNo.1" / "a" / "color", [355, 360, 500, 505], lambda n: f"{n}.jpg"
    )  # folder case differs
    write_frames(root / "spNO.2" / "f" / "color", [10, 14], lambda n: f"{n}.jpg")
    write_frames(root / "spNO.2" / "f" / "depth", [10, 14], lambda n: f"{n}.png")
    return path


def build_dfme(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.csv").write_text(
        "Subject,Filename,Onset,Apex,Offset,AU,Emotion\n"
        "17,10001,1,4,9,R12+R14,contempt\n"
        "17,10002,1,3,6,6+12,happiness\n"
        "23,10003,2,5,8,9+10,Disgust\n",
        encoding="utf-8",
    )
    write_sheet(
        root / "TestA.xlsx",
        [
            ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Emotion"],
            [41, "20001", 1, 2, 5, "1+2+5+26", "surprise"],
        ],
    )
    for clip, numbers in (("10001", [1, 4]), ("10002", [1, 3]), ("10003", [2, 5])):
        write_frames(root / "train" / clip, numbers, lambda n: f"{n:04d}.jpg")
    write_frames(root / "TestA" / "20001", [1, 2], lambda n: f"{n:04d}.jpg")
    return root


def faces_over(root: Path, size: int = 160) -> None:
    """Every frame under ``root`` replaced by a real face (SynthME's first built-in photo, ``size`` pixels square)
    whose centre moves a little more at each frame of its folder, so a recipe's own landmarker and flow run on it."""
    from mellm_plugins.dataset.synthme.faces import builtin_photos, find_faces
    from mellm_plugins.dataset.synthme.motion import subject_matrix

    face = find_faces(builtin_photos(), "dlib68")[0]
    base = cv2.warpAffine(face.image, subject_matrix(face.landmarks, size, 0.62, 0.0, (0.0, 0.0)), (size, size),
                          flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101).astype(np.float32)
    for folder in sorted({p.parent for p in root.rglob("*") if p.suffix in (".jpg", ".png")}):
        for i, frame in enumerate(sorted(p for p in folder.iterdir() if p.suffix in (".jpg", ".png"))):
            moved = warp_forward(base, 0.6 * i * _bump(size, size / 8))
            cv2.imwrite(str(frame), np.clip(moved, 0, 255).astype(np.uint8))


def build_table2_releases(root: Path) -> Path:
    """The three releases ``recipes/mellm_paper.yaml`` reads, under ``root``: DFME (train, TestA and TestB lists),
    CASME II and CAS(ME)^3 Part A, their frames real faces (``faces_over``)."""
    dfme = build_dfme(root / "DFME")
    (dfme / "TestB.csv").write_text("Subject,Filename,Onset,Apex,Offset,AU,Emotion\n"
                                    "52,30001,1,3,6,4+7,anger\n52,30002,1,2,5,6+12,happiness\n", encoding="utf-8")
    for clip in ("30001", "30002"):
        write_frames(dfme / "TestB" / clip, [1, 2, 3], lambda n: f"{n:04d}.jpg")
    build_casme2(root / "CASME2")
    build_casme3(root / "CASME3")
    faces_over(root)
    return root

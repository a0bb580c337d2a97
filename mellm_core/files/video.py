"""Videos as streams of frames: a video file (whatever OpenCV reads: mp4, avi, mov) or a folder of numbered frames.

Frames are read one at a time, so a long video never sits in memory whole. Frame numbers count from 1 in a video
file, as annotation sheets count; in a folder they are the files' own numbers, in the order the dataset plugins
read clips (``img46.jpg`` is frame 46).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mellm_core.data.frameindex import ClipFrames
from mellm_core.errors import InputError
from mellm_core.files.frames import read_gray, read_rgb, to_gray

HEADER_SLACK = 2  # frames a header may count beyond those a whole file holds (a count estimated from the duration)


class VideoDecodeError(InputError):
    """A video file's frames do not decode as its header states, or change size: it is truncated or corrupt."""


@dataclass
class Video:
    """A video's frame rate, frame numbers and frames."""

    source: Path
    fps: float
    clip: ClipFrames | None = None  # a frames folder's files
    stated: int | None = None  # a file's frame count as its header states it, when the reader is held to it:
    # decoding stops there, and a file that ends sooner (by over HEADER_SLACK) is a VideoDecodeError (the service
    # checks its limits on the header, so the frames must keep to it)

    def number(self, index: int) -> int:
        """The frame number of the ``index``-th frame read (from 1)."""
        return self.clip.numbers[index - 1] if self.clip is not None else index

    def count(self) -> int:
        """How many frames the video holds (a file's header may be off by a few; ``frames`` reads what is there)."""
        if self.clip is not None:
            return len(self.clip.numbers)
        capture = cv2.VideoCapture(str(self.source))
        try:
            return int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            capture.release()

    def frames(self, start: int = 1, stop: int | None = None) -> Iterator[np.ndarray]:
        """The frames from the ``start``-th to the ``stop``-th read (from 1; None: to the end), grayscale uint8."""
        if self.clip is not None:
            for number in self.clip.numbers[start - 1:stop]:
                yield read_gray(self.clip.path(number))
            return
        if self.stated is not None:  # a header's count caps decoding: a file cannot hold more than it stated
            stop = self.stated if stop is None else min(stop, self.stated)
        capture = cv2.VideoCapture(str(self.source))
        try:
            if start > 1 and not _seek(capture, start - 1):  # a codec that cannot seek exactly: decode forward
                capture.release()
                capture = cv2.VideoCapture(str(self.source))
                for _ in range(start - 1):
                    if not capture.grab():
                        return
            index, size = start, None
            while stop is None or index <= stop:
                ok, frame = capture.read()
                if not ok:
                    if self.stated is not None and stop is not None and index <= stop - HEADER_SLACK:
                        raise VideoDecodeError(f"{self.source.name} is truncated or corrupt: frame {index} does not "
                                               f"decode, and its header states {self.stated} frames")
                    return
                if size is not None and frame.shape != size:  # the spotter's mask and flow need one size
                    raise VideoDecodeError(f"{self.source.name} is corrupt: frame {index} is {frame.shape[1]}x"
                                           f"{frame.shape[0]}, the frames before it {size[1]}x{size[0]}")
                size = frame.shape
                yield to_gray(frame)
                index += 1
        finally:
            capture.release()

    def frame(self, number: int) -> np.ndarray:
        """Frame ``number`` in colour (BGR uint8), for maps of a spotted interval."""
        if self.clip is not None:
            return read_rgb(self.clip.path(number))[:, :, ::-1]
        capture = cv2.VideoCapture(str(self.source))
        try:
            for _ in range(number):  # decoding forward is exact; seeking is not, for every codec
                ok, frame = capture.read()
                if not ok:
                    raise InputError(f"{self.source} has no frame {number}")
            return frame
        finally:
            capture.release()


def _seek(capture: cv2.VideoCapture, frames_before: int) -> bool:
    """Put ``capture`` before its frame ``frames_before`` (counted from 0); False when the backend cannot say that
    it got there exactly."""
    return bool(capture.set(cv2.CAP_PROP_POS_FRAMES, frames_before)) and \
        int(capture.get(cv2.CAP_PROP_POS_FRAMES)) == frames_before


def open_video(path: str | Path, fps: float | None = None, folder_fps: float | None = None,
               stated: int | None = None) -> Video:
    """A video file or a frames folder. ``fps`` overrides a file's own rate; a folder (frames carry no rate) takes
    ``fps``, else ``folder_fps`` (the recipe's ``spot.fps``). ``stated``: a file's frame count read from its
    header, which its frames are held to (``Video.stated``)."""
    source = Path(path)
    if source.is_dir():
        fps = fps or folder_fps
        if not fps:
            raise InputError(f"{source} is a folder of frames, which carries no frame rate: give --fps "
                             "(e.g. 200 for CASME II, 30 for CAS(ME)^3)")
        return Video(source, float(fps), ClipFrames(source))
    if not source.is_file():
        raise InputError(f"video {source} does not exist")
    capture = cv2.VideoCapture(str(source))
    try:
        if not capture.isOpened() or not capture.read()[0]:
            raise InputError(f"{source} is not a video OpenCV can read (give a video file, or a folder of frames)")
        rate = fps or float(capture.get(cv2.CAP_PROP_FPS) or 0)
    finally:
        capture.release()
    if rate <= 0:
        raise InputError(f"{source} states no frame rate: give --fps")
    return Video(source, rate, stated=stated)

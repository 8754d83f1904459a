"""Images from a folder: replay them in order, or watch a hot folder for new files.

*replay*: every image file in the folder, sorted by name, once (or looping).
*watch*: files that appear after the source was opened (or all, with ``include_existing``),
oldest first; a file is only read once its size has stopped changing for ``stable_s`` (a
camera or a copy over the network writes it in pieces).

A file that cannot be decoded is logged, counted in ``health().decode_errors`` and skipped;
the source never stops for it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from qc_station.capture.base import FrameSource, to_bgr
from qc_station.capture.frame import EndOfStream, Frame, FrameTimeout
from qc_station.errors import CameraError

log = logging.getLogger(__name__)

DEFAULT_PATTERNS = ("*.png", "*.jpg", "*.jpeg", "*.bmp", "*.tif", "*.tiff", "*.webp")


@dataclass
class _Pending:
    size: int
    mtime_ns: int
    stable_since: float


def decode_image_file(path: Path) -> np.ndarray:
    """Read an image file as B, G, R uint8, or raise ValueError saying why it failed."""
    data = np.fromfile(str(path), dtype=np.uint8)  # fromfile + imdecode: also non-ASCII paths
    if data.size == 0:
        raise ValueError("empty file")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a decodable image (corrupt or truncated?)")
    if image.dtype != np.uint8:  # 16-bit PNG / TIFF
        image = (image / 257).astype(np.uint8)
    return to_bgr(image)


class FolderSource(FrameSource):
    """Frames from image files in a folder (see the module doc).

    Args:
        path: the folder.
        mode: ``"replay"`` or ``"watch"``.
        loop: replay only: start again after the last file instead of ending.
        patterns: glob patterns of the files to take (case-insensitive).
        stable_s: watch only: a file's size must be unchanged this long before it is read.
        poll_s: watch only: how often the folder is listed while waiting.
        include_existing: watch only: also take the files already there at open.
        clock, sleep: injectable for tests (``time.monotonic`` / ``time.sleep``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        mode: str = "replay",
        loop: bool = False,
        patterns: Sequence[str] = DEFAULT_PATTERNS,
        stable_s: float = 0.5,
        poll_s: float = 0.1,
        include_existing: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if mode not in ("replay", "watch"):
            raise ValueError(f"mode must be 'replay' or 'watch', got {mode!r}")
        if poll_s <= 0 or stable_s < 0:
            raise ValueError("poll_s must be > 0 and stable_s >= 0")
        self.path = Path(path)
        super().__init__(f"folder:{self.path}")
        self.mode = mode
        self.loop = loop
        self.patterns = tuple(p.lower() for p in patterns)
        self.stable_s = stable_s
        self.poll_s = poll_s
        self.include_existing = include_existing
        self._clock = clock
        self._sleep = sleep
        self._queue: list[Path] = []  # replay: files of the current pass, in order
        self._index = 0
        self._good_this_pass = 0
        self._seen: set[str] = set()  # watch: names already handed out (or skipped)
        self._pending: dict[str, _Pending] = {}

    # -- helpers --------------------------------------------------------------------------------

    def _matches(self, name: str) -> bool:
        low = name.lower()
        return any(Path(low).match(p) for p in self.patterns)

    def _list(self) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(self.path) as it:
                return [e for e in it if e.is_file() and not e.name.startswith(".") and self._matches(e.name)]
        except FileNotFoundError as exc:
            raise CameraError(f"folder {self.path} no longer exists") from exc
        except OSError as exc:
            raise CameraError(f"cannot list folder {self.path}: {exc}") from exc

    def _decode(self, path: Path) -> np.ndarray | None:
        try:
            return decode_image_file(path)
        except (OSError, ValueError) as exc:
            msg = f"skipped {path.name}: {exc}"
            log.warning("%s: %s", self.name, msg)
            self._count_decode_error(msg)
            return None

    def _frame(self, path: Path, image: np.ndarray) -> Frame:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            mtime = None
        meta = {"path": str(path), "file_name": path.name}
        if mtime is not None:
            meta["file_mtime"] = mtime
        return self._make_frame(image, meta)

    # -- FrameSource ----------------------------------------------------------------------------

    def _open(self) -> None:
        if not self.path.is_dir():
            raise CameraError(f"capture folder {self.path} does not exist or is not a folder")
        self._index = 0
        self._good_this_pass = 0
        self._pending.clear()
        if self.mode == "replay":
            self._queue = sorted((Path(e.path) for e in self._list()), key=lambda p: p.name)
        elif not self.include_existing:
            self._seen = {e.name for e in self._list()}

    def _read(self, timeout_s: float) -> Frame:
        return self._read_replay() if self.mode == "replay" else self._read_watch(timeout_s)

    def _read_replay(self) -> Frame:
        while True:
            if self._index >= len(self._queue):
                if not self.loop or self._good_this_pass == 0:
                    # Nothing decodable in a whole pass would loop for ever: end instead.
                    raise EndOfStream(f"no more images in {self.path}")
                self._index = 0
                self._good_this_pass = 0
            path = self._queue[self._index]
            self._index += 1
            image = self._decode(path)
            if image is not None:
                self._good_this_pass += 1
                return self._frame(path, image)

    def _read_watch(self, timeout_s: float) -> Frame:
        deadline = self._clock() + timeout_s
        while True:
            for path in self._ready_files():
                self._seen.add(path.name)
                self._pending.pop(path.name, None)
                image = self._decode(path)
                if image is not None:
                    return self._frame(path, image)
            if self._clock() >= deadline:
                raise FrameTimeout(f"no new complete image in {self.path} within {timeout_s:.1f} s")
            self._sleep(self.poll_s)

    def _ready_files(self) -> list[Path]:
        """New files whose size has been stable for ``stable_s``, oldest first."""
        now = self._clock()
        ready: list[tuple[int, str, Path]] = []
        for entry in self._list():
            if entry.name in self._seen:
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue  # renamed away in between
            prev = self._pending.get(entry.name)
            if prev is None or prev.size != st.st_size or prev.mtime_ns != st.st_mtime_ns:
                self._pending[entry.name] = _Pending(st.st_size, st.st_mtime_ns, now)
                if self.stable_s > 0 or st.st_size == 0:
                    continue
            elif st.st_size == 0 or now - prev.stable_since < self.stable_s:
                continue
            ready.append((st.st_mtime_ns, entry.name, Path(entry.path)))
        ready.sort()
        return [p for _, _, p in ready]

    def _close(self) -> None:
        self._queue = []
        self._pending.clear()

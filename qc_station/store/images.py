"""Image files next to the database: atomic writes, the free-space guard, and paths.

Layout: ``<data>/images/YYYY-MM-DD/<uid>_<kind>.jpg`` (relative paths go in the ``images``
table). Every file is written to a temporary name, fsynced, renamed and its folder fsynced,
*before* the inspection row commits: a committed row never points at a half-written file. A
crash between the two leaves an unreferenced file, which is harmless (named by a fresh uid).
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qc_station.errors import StorageError

#: Which images each verdict keeps: the evidence for a reject, a thumbnail for a pass.
KINDS_BY_VERDICT: dict[str, tuple[str, ...]] = {
    "pass": ("thumb",),
    "fail": ("frame", "annotated", "thumb"),
    "unusable": ("frame", "annotated", "thumb"),
}


@dataclass(frozen=True)
class ImagePolicy:
    """How images are encoded, kept and pruned (from the station config)."""

    jpeg_quality: int = 90
    thumb_width_px: int = 640
    overlay_width_px: int = 1600  # the overlay is for people; the full frame stays full size
    min_free_mb: float = 500.0
    keep_pass_days: float | None = 30.0
    keep_reject_days: float | None = None  # None: keep reject evidence until space runs out


@dataclass(frozen=True)
class WrittenImage:
    kind: str
    rel_path: str
    bytes: int


class DiskFullError(StorageError):
    """Not enough free space to write images (after pruning what retention allows)."""


def free_mb(path: Path) -> float:
    """Free space available to this process on the file system holding ``path``, in MiB."""
    return shutil.disk_usage(path).free / 2**20


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(tmp: Path, data: bytes) -> None:
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _storage_error(exc: OSError, path: Path) -> StorageError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"disk full while writing {path.name} ({exc.strerror})")
    return StorageError(f"cannot write image {path}: {exc}")


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that the file is either absent or complete, even on power loss."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        _write_synced(tmp, data)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _storage_error(exc, path) from None


#: Encoding a full frame is the slow part of storing a reject (~30 ms per 2304x1296 JPEG here);
#: OpenCV releases the GIL, so the images of one inspection are encoded side by side.
_POOL = ThreadPoolExecutor(max_workers=3, thread_name_prefix="qc-image")


def encode_jpeg(image_bgr: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of a BGR (or grey) uint8 image."""
    import cv2

    ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise StorageError("image encoding failed (empty or invalid image array)")
    return buf.tobytes()


def thumbnail(image_bgr: np.ndarray, width_px: int) -> np.ndarray:
    """The image scaled down to ``width_px`` wide (never up)."""
    import cv2

    h, w = image_bgr.shape[:2]
    if w <= width_px:
        return image_bgr
    img = image_bgr
    # halving with INTER_AREA is OpenCV's fast integer path (a 2304 -> 640 INTER_AREA in one step
    # costs ~10x more); the last step is < 2x, where bilinear does not alias visibly
    while img.shape[1] >= 2 * width_px:
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(img, (width_px, max(1, round(h * width_px / w))), interpolation=cv2.INTER_LINEAR)


class ImageFiles:
    """Writes and locates the image files of inspections under ``root``."""

    def __init__(self, root: Path, policy: ImagePolicy) -> None:
        self.root = Path(root)
        self.policy = policy
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob("*/.*.tmp"):  # left by a crash mid-write
            stale.unlink(missing_ok=True)

    def path(self, rel_path: str) -> Path:
        return self.root / rel_path

    def has_room(self) -> bool:
        return free_mb(self.root) >= self.policy.min_free_mb

    def write_set(
        self,
        uid: str,
        verdict: str,
        frame_bgr: np.ndarray | None,
        annotated_bgr: np.ndarray | None,
        now: float | None = None,
    ) -> list[WrittenImage]:
        """Encode and write the images this verdict keeps; returns what was written.

        The thumbnail is made from the annotated image when there is one (that is what people
        look at), else from the frame. On any failure the files of this set are removed.
        """
        day = time.strftime("%Y-%m-%d", time.gmtime(now or time.time()))
        folder = self.root / day
        folder.mkdir(exist_ok=True)
        sources = {
            "frame": frame_bgr,
            "annotated": annotated_bgr,
            "thumb": annotated_bgr if annotated_bgr is not None else frame_bgr,
        }
        jobs = [(kind, sources[kind]) for kind in KINDS_BY_VERDICT[verdict] if sources[kind] is not None]

        def encode_and_write(kind: str, img: np.ndarray) -> WrittenImage:
            if kind == "thumb":
                img = thumbnail(img, self.policy.thumb_width_px)
            elif kind == "annotated":
                img = thumbnail(img, self.policy.overlay_width_px)
            data = encode_jpeg(img, self.policy.jpeg_quality)
            rel = f"{day}/{uid}_{kind}.jpg"
            tmp = self.root / f"{day}/.{uid}_{kind}.jpg.tmp"
            try:
                _write_synced(tmp, data)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise _storage_error(exc, self.root / rel) from None
            return WrittenImage(kind, rel, len(data))

        futures = [_POOL.submit(encode_and_write, kind, img) for kind, img in jobs]
        written: list[WrittenImage] = []
        error: BaseException | None = None
        for fut in futures:
            try:
                written.append(fut.result())
            except BaseException as exc:
                error = error or exc
        try:
            if error is not None:
                raise error
            # every file is complete and synced under its temporary name: now make them visible
            for w in written:
                os.replace(self.root / f"{day}/.{Path(w.rel_path).name}.tmp", self.root / w.rel_path)
            if written:
                _fsync_dir(folder)
        except OSError as exc:
            self._discard(day, written)
            raise _storage_error(exc, folder) from None
        except BaseException:
            self._discard(day, written)
            raise
        return written

    def _discard(self, day: str, written: list[WrittenImage]) -> None:
        for w in written:
            (self.root / f"{day}/.{Path(w.rel_path).name}.tmp").unlink(missing_ok=True)
        self.remove([w.rel_path for w in written])

    def remove(self, rel_paths: list[str]) -> int:
        """Delete files (missing ones are fine); returns the bytes freed."""
        freed = 0
        for rel in rel_paths:
            p = self.root / rel
            try:
                freed += p.stat().st_size
                p.unlink()
            except FileNotFoundError:
                pass
        return freed

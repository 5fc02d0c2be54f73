"""A one-line progress report on stderr for long transfers, without a dependency.

On a terminal the line redraws in place; in a pod log (not a TTY) a line is printed every few seconds,
so ``kubectl logs`` of a slow init container shows it is moving and how fast.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


class Progress:
    """Thread-safe byte and file counters; ``add`` is called from the transfer threads."""

    def __init__(
        self,
        label: str,
        total_bytes: int,
        total_files: int,
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        interval: float | None = None,
    ):
        self.label = label
        self.total_bytes = total_bytes
        self.total_files = total_files
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.5 if self.tty else 5.0)
        self.bytes = 0
        self.files = 0
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last = self._start

    def add(self, nbytes: int) -> None:
        with self._lock:
            self.bytes += nbytes
            self._maybe_draw()

    def file_done(self) -> None:
        with self._lock:
            self.files += 1
            self._maybe_draw()

    def _maybe_draw(self) -> None:
        now = time.monotonic()
        if self.enabled and now - self._last >= self.interval:
            self._last = now
            self._draw(now, final=False)

    def _draw(self, now: float, final: bool) -> None:
        elapsed = max(now - self._start, 1e-6)
        pct = 100.0 * self.bytes / self.total_bytes if self.total_bytes else 100.0
        line = (
            f"{self.label}: {human_bytes(self.bytes)} / {human_bytes(self.total_bytes)} ({pct:.0f}%), "
            f"{self.files}/{self.total_files} files, {human_bytes(self.bytes / elapsed)}/s"
        )
        if self.tty:
            self.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        with self._lock:
            if self.enabled:
                self._draw(time.monotonic(), final=True)

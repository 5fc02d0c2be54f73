"""Progress of long transfers on stderr: bytes, files, rate and time left, drawn by tqdm.

On a terminal it is tqdm's bar, redrawn in place. Where stderr is a log (a pod's init container, a CI
job that asked for it) a plain line is printed every few seconds instead, in the same format, because
a log keeps every carriage-return redraw as one endless line. Nothing is printed unless stderr is a
terminal or progress was asked for, so scripts and captured output stay clean.

A step whose work happens elsewhere (the server-side copy of ``snapshot create``) reports bytes only
when a file completes; a ticker redraws meanwhile, so the elapsed time moves and the step never looks
hung.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from tqdm import tqdm

# {remaining} is tqdm's estimate from the rate so far: the ETA.
_LINE_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]{postfix}"
_MIN_TICK = 0.2  # seconds; the ticker only fills gaps between updates
_BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]{postfix}"
)


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def wanted(requested: bool | None, stream: TextIO) -> bool:
    """``--progress`` (True) and ``--no-progress`` (False) decide; otherwise only on a terminal."""
    if requested is not None:
        return requested
    return bool(getattr(stream, "isatty", lambda: False)())


class Progress:
    """Thread-safe byte and file counters; ``add`` is called from the transfer threads."""

    def __init__(
        self,
        label: str,
        total_bytes: int,
        total_files: int,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        interval: float | None = None,
    ):
        self.label = label
        self.total_bytes = total_bytes
        self.total_files = total_files
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = wanted(enabled, self.stream)
        self.interval = interval if interval is not None else (0.5 if self.tty else 5.0)
        self.bytes = 0
        self.files = 0
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last = self._start
        self._closed = threading.Event()
        self._bar: Any = None
        if self.enabled and self.tty:
            self._bar = tqdm(
                total=total_bytes,
                desc=label,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=self.stream,
                bar_format=_BAR_FORMAT,
                mininterval=self.interval,
                dynamic_ncols=True,
                postfix=self._files_text(),
            )
        self._ticker: threading.Thread | None = None
        if self.enabled:
            self._ticker = threading.Thread(target=self._tick, name=f"progress-{label}", daemon=True)
            self._ticker.start()

    def _files_text(self) -> str:
        return f"{self.files}/{self.total_files} files"

    def add(self, nbytes: int) -> None:
        with self._lock:
            self.bytes += nbytes
            if self._bar is not None:
                self._bar.update(nbytes)
            else:
                self._maybe_line()

    def file_done(self) -> None:
        with self._lock:
            self.files += 1
            if self._bar is not None:
                self._bar.set_postfix_str(self._files_text(), refresh=False)
            else:
                self._maybe_line()

    def _tick(self) -> None:
        """Redraw while no bytes arrive (a server-side copy), so time and rate keep moving."""
        while not self._closed.wait(max(self.interval, _MIN_TICK)):
            with self._lock:
                if self._closed.is_set():
                    return
                if self._bar is not None:
                    self._bar.refresh()
                else:
                    self._maybe_line()

    def _maybe_line(self) -> None:
        now = time.monotonic()
        if self.enabled and now - self._last >= self.interval:
            self._last = now
            self._line(now)

    def _line(self, now: float) -> None:
        line = tqdm.format_meter(
            self.bytes,
            self.total_bytes,
            now - self._start,
            prefix=self.label,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            bar_format=_LINE_FORMAT,
            postfix=self._files_text(),
        )
        self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            if self._bar is not None:
                self._bar.set_postfix_str(self._files_text(), refresh=False)
                self._bar.close()
            elif self.enabled:
                self._line(time.monotonic())
        if self._ticker is not None:
            self._ticker.join()

"""Stop sequences over a stream: text is released only once it cannot be the start of a stop sequence.

A stop sequence may arrive split over several responses ("<|im_" then "end|>"), so the tail that could
still grow into one is held back until the next piece decides; what the client sees never contains a
stop sequence, streamed or not.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopScanner:
    def __init__(self, stops: Sequence[str]):
        self.stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """The part of everything so far that is safe to send now."""
        if not self.stops:  # most completions: nothing to hold back
            return text
        if self.stopped:
            return ""
        buffer = self._held + text
        cut = min((i for i in (buffer.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped, self._held = True, ""
            return buffer[:cut]
        keep = self._partial_tail(buffer)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep]

    def _partial_tail(self, buffer: str) -> int:
        """Length of the longest suffix of ``buffer`` that is a proper prefix of a stop sequence."""
        best = 0
        for stop in self.stops:
            longest = min(len(stop) - 1, len(buffer))
            # such a suffix starts with the stop's first character: none in reach, nothing to try
            if longest <= best or buffer.find(stop[0], len(buffer) - longest) < 0:
                continue
            for length in range(longest, best, -1):
                if buffer.endswith(stop[:length]):
                    best = length
                    break
        return best

    def flush(self) -> str:
        """What was held back when the model ended without completing a stop sequence."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

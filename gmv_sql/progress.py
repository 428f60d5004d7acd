"""A progress line for long work: counts, percent, rate and ETA on stderr.

On a terminal it redraws in place; in logs (CI, pipes) it prints a line every few seconds.
"""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, total: int | None = None, *, unit: str = "items", enabled: bool = True):
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self.detail = ""  # appended to the line, e.g. which stage is the bottleneck
        self.enabled = enabled
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._drawn_done: int | None = None
        self._tty = sys.stderr.isatty()
        self._interval = 0.2 if self._tty else 5.0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last_draw >= self._interval:
            self._last_draw = now
            self._draw(final=False)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self._start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate
        parts = [self.label]
        if self.total:
            pct = 100.0 * self.done / self.total
            parts.append(f"{self.done:,}/{self.total:,} {self.unit} ({pct:5.1f}%)")
        else:
            parts.append(f"{self.done:,} {self.unit}")
        parts.append(f"{rate:,.1f}/s")
        if self.total and rate > 0 and self.done < self.total:
            remaining = (self.total - self.done) / rate
            parts.append(f"ETA {int(remaining // 60)}:{int(remaining % 60):02d}")
        elif self.done:
            elapsed = time.monotonic() - self._start
            parts.append(f"{elapsed:.1f}s")
        if self.detail:
            parts.append(self.detail)
        return "  ".join(parts)

    def _draw(self, *, final: bool) -> None:
        if not self.enabled:
            return
        if final and not self._tty and self._drawn_done == self.done:
            return  # in logs, do not repeat the line just printed
        self._drawn_done = self.done
        text = self.line()
        if self._tty:
            sys.stderr.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        self._draw(final=True)
        self.enabled = False

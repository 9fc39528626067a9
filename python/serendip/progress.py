"""Progress of long stages: the C library reports (label, done, total) through a callback.

``progress=`` of every stage accepts:

* ``None`` (default): nothing is shown (the library's own bar is drawn when stderr is a terminal);
* ``True``: a progress bar, ``tqdm.auto`` when installed (a widget in a notebook), else a text bar
  on stderr that redraws in place in a terminal and in a notebook;
* a callable ``f(label: str, done: int, total: int)``, called on the thread running the stage.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Optional, Union

ProgressCallback = Callable[[str, int, int], None]
Progress = Union[None, bool, ProgressCallback]


class TextBar:
    """A one-line bar per label on a stream ("\\r"-redrawn); a callable usable as ``progress=``."""

    def __init__(self, stream=None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self.label: Optional[str] = None
        self.t0 = time.monotonic()

    def __call__(self, label: str, done: int, total: int) -> None:
        if label != self.label:
            self.label, self.t0 = label, time.monotonic()
        frac = min(1.0, done / total) if total > 0 else 0.0
        fill = int(frac * self.width)
        self.stream.write("\r%-14s [%s%s] %5.1f%% %6.1fs" % (label, "#" * fill, "." * (self.width - fill), 100 * frac,
                                                             time.monotonic() - self.t0))
        if total > 0 and done >= total:
            self.stream.write("\n")
        self.stream.flush()


class _TqdmBars:
    """One tqdm bar per label (tqdm.auto: a widget in a notebook, text in a terminal)."""

    def __init__(self, tqdm):
        self.tqdm = tqdm
        self.bars = {}

    def __call__(self, label: str, done: int, total: int) -> None:
        bar = self.bars.get(label)
        if bar is None:
            bar = self.bars[label] = self.tqdm(total=total or None, desc=label, leave=True)
        bar.n = done
        bar.refresh()
        if total > 0 and done >= total:
            bar.close()
            del self.bars[label]


def make_callback(progress: Progress) -> Optional[ProgressCallback]:
    """The callable for a ``progress=`` argument (None: no callback)."""
    if progress is None or progress is False:
        return None
    if progress is True:
        try:
            from tqdm.auto import tqdm  # optional
            return _TqdmBars(tqdm)
        except ImportError:
            return TextBar()
    if callable(progress):
        return progress
    raise TypeError("progress must be None, True or a callable(label, done, total)")

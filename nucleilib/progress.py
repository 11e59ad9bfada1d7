"""One-line progress reports of long work (training epochs, images scored).

They go to the terminal, not into a notebook's output: inside a Jupyter kernel
``sys.stderr`` is the cell's output, so a report is written to the process's own
standard error (:data:`sys.__stderr__`, the terminal of whoever started the kernel, such
as ``nuclei study``), and appended to the file named by :data:`LOG_ENV` when it is set
(the study's runner sets it to a log beside each executed notebook).

Examples
--------
>>> import io, contextlib
>>> buffer = io.StringIO()
>>> with contextlib.redirect_stderr(buffer):
...     report("training x: epoch 1/2")
>>> buffer.getvalue()
'training x: epoch 1/2\\n'
"""

from __future__ import annotations

import os
import sys
import time

#: Environment variable naming a file that progress lines are appended to.
LOG_ENV = "NUCLEI_PROGRESS_LOG"


def report(line: str) -> None:
    """Write one progress line to the terminal (and the log file of :data:`LOG_ENV`)."""
    # Inside a Jupyter kernel sys.stderr is the cell's output stream, an ipykernel OutStream.
    in_kernel = type(sys.stderr).__module__.startswith("ipykernel")
    terminal = sys.__stderr__ if in_kernel and sys.__stderr__ is not None else sys.stderr
    print(line, file=terminal, flush=True)
    log = os.environ.get(LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{time.strftime('%H:%M:%S')} {line}\n")


def duration(seconds: float) -> str:
    """``seconds`` as ``"42 s"``, ``"3.5 min"`` or ``"2.5 h"``.

    Examples
    --------
    >>> duration(42.3), duration(210), duration(9000)
    ('42 s', '3.5 min', '2.5 h')
    """
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Countdown:
    """Progress of ``total`` steps of one task: :meth:`step` reports the count done, the
    elapsed time and an estimate of the time left (from the mean time per step so far).

    Examples
    --------
    >>> import io, contextlib
    >>> buffer = io.StringIO()
    >>> with contextlib.redirect_stderr(buffer):
    ...     countdown = Countdown("scoring", 4, every=2)
    ...     for _ in range(4):
    ...         countdown.step()
    >>> [line.split(",")[0] for line in buffer.getvalue().splitlines()]
    ['scoring: 2 of 4', 'scoring: 4 of 4']
    """

    def __init__(self, task: str, total: int, *, every: int = 1, unit: str = "") -> None:
        self.task, self.total, self.every, self.unit = task, int(total), max(1, int(every)), unit
        self.done = 0
        self.start = time.monotonic()

    def step(self, detail: str = "") -> None:
        self.done += 1
        if self.done % self.every and self.done != self.total:
            return
        elapsed = time.monotonic() - self.start
        left = elapsed / self.done * (self.total - self.done)
        unit = f" {self.unit}" if self.unit else ""
        extra = f", {detail}" if detail else ""
        report(
            f"{self.task}: {self.done} of {self.total}{unit}{extra}, {duration(elapsed)} elapsed, "
            f"about {duration(left)} left"
        )

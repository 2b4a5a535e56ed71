"""One progress line per epoch; on a terminal, a live bar that rewrites itself."""

import sys
from typing import TextIO

BAR_WIDTH = 20


class Progress:
    def __init__(self, epochs: int, stream: TextIO | None = None):
        self.epochs = epochs
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty()

    def epoch(self, epoch: int, metrics: dict[str, float | None], seconds: float) -> None:
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if v is not None)
        line = f"epoch {epoch:>{len(str(self.epochs))}}/{self.epochs}  {shown}  {seconds:.1f}s"
        if self.live:
            done = BAR_WIDTH * epoch // self.epochs
            bar = "[" + "#" * done + "." * (BAR_WIDTH - done) + "] "
            self.stream.write("\r" + bar + line + "\033[K")  # \033[K clears the old tail
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()

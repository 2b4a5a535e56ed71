"""The commands of README.md and docs/*.md, read from the pages themselves, and a place to run
them as a user would: a directory that looks like the checkout, so that what they write
(outputs/, multirun/, predictions.csv) lands there and not in the repository."""

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# What a command needs of the checkout; pyproject.toml is copied (see mirror_checkout).
LINKED = ("Makefile", "configs", "dlbasics", "scripts", ".venv")
CACHES = shutil.ignore_patterns("__pycache__")

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SPAN = re.compile(r"`([^`]+)`")


def fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    """(language, text) of each fenced code block, in order."""
    return [(match.group(1), match.group(2)) for match in FENCE.finditer(markdown)]


def section(markdown: str, heading: str) -> str:
    """The text under ``## heading``, up to the next heading of that level."""
    start = markdown.index(f"\n## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else len(markdown)]


def shell_lines(text: str) -> list[str]:
    """The lines of a bash block that a user types (continuations joined): those starting
    with `make ` or `.venv/bin/`."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [
        line.strip()
        for line in joined.splitlines()
        if line.strip().startswith(("make ", ".venv/bin/"))
    ]


def train_commands(markdown: str) -> list[str]:
    """Every command line of a page that runs scripts/train.py: in its bash blocks, and in
    its inline code spans (which may wrap over two lines of the Markdown)."""
    commands = []
    for language, text in fenced_blocks(markdown):
        if language == "bash":
            commands += [line for line in shell_lines(text) if "scripts/train.py" in line]
    prose = FENCE.sub("", markdown)
    for span in SPAN.findall(prose):
        span = " ".join(span.split())
        # A table's heading names the command its cells complete: `….py …`; not a command.
        if span.startswith(".venv/bin/") and "scripts/train.py" in span and "…" not in span:
            commands.append(span)
    return commands


def mirror_checkout(directory: Path, copied: tuple[str, ...] = ()) -> Path:
    """``directory`` made to look like the checkout: symbolic links to its code, configs and
    .venv, or copies of those named in ``copied`` (to change them there). pyproject.toml is a
    copy dated before .venv/.installed, so that `make` sees the install as done and never
    reinstalls into the shared .venv (the caller checks that it is there: see
    make_would_install)."""
    for name in LINKED:
        if name in copied:
            shutil.copytree(ROOT / name, directory / name, ignore=CACHES)
        else:
            (directory / name).symlink_to(ROOT / name)
    shutil.copy(ROOT / "pyproject.toml", directory / "pyproject.toml")
    installed = ROOT / ".venv" / ".installed"
    if installed.exists():
        before = installed.stat().st_mtime - 60
        os.utime(directory / "pyproject.toml", (before, before))
    return directory


def make_would_install(directory: Path) -> bool:
    """Whether `make` in ``directory`` would (re)create .venv: a test must not install."""
    question = subprocess.run(["make", "-q", "install"], cwd=directory, capture_output=True)
    return question.returncode != 0


# make's own, and the Makefile's variables that `make test ARGS=…` exports to its commands
MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "ARGS", "LOGDIR", "PYTHON")


def run_shell(
    line: str, cwd: Path, timeout: float = 120, stdin: str = "", **env: str
) -> subprocess.CompletedProcess:
    """Run one command line through bash, as typed into a terminal (``stdin`` its input,
    ``env`` variables set for it). Not inside this test run's own `make`: a `make test
    ARGS=…` would hand its variables down to the README's `make train`."""
    terminal = {k: v for k, v in os.environ.items() if k not in MAKE_VARIABLES}
    return subprocess.run(
        ["bash", "-c", line],
        cwd=cwd,
        env={**terminal, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )

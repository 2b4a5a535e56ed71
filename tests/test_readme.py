"""The README's quick start runs as written, and every train.py command of README.md and
docs/*.md composes into a valid config.

The quick-start commands are read from the README itself (its "Quick start" section) and run
through bash in a directory that mirrors the checkout (doc_commands.mirror_checkout)."""

import csv
import json
import os
import re
import shlex
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from doc_commands import (
    PAGES,
    ROOT,
    fenced_blocks,
    make_would_install,
    mirror_checkout,
    run_shell,
    section,
    shell_lines,
    train_commands,
)
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from conftest import compose_only
from dlbasics.cli import describe_hydra_error
from dlbasics.config import validate
from dlbasics.config_guard import refuse_code_in_arguments
from dlbasics.errors import UserError

README = (ROOT / "README.md").read_text()
QUICK_START = section(README, "Quick start")
QUICK_COMMANDS = [
    line
    for language, text in fenced_blocks(QUICK_START)
    if language == "bash"
    for line in shell_lines(text)
]
QUICK_PYTHON = [text for language, text in fenced_blocks(QUICK_START) if language == "python"]

# The commands that use the model the quick start trained.
USING_THE_MODEL = ("scripts/predict.py", "scripts/evaluate.py", "dlbasics.load")
NOT_RUN = {
    "make test": "the test suite itself: it is what is running this test",
    "make tb": "a server: test_make_tb_serves_tensorboard starts it on a port of its own",
}


def uses_the_model(command: str) -> bool:
    return any(marker in command for marker in USING_THE_MODEL)


def test_readme_starts_on_one_screen_and_stays_short():
    lines = README.splitlines()
    assert len(lines) <= 200
    quick_start_end = README[: README.index(QUICK_START) + len(QUICK_START)].count("\n")
    assert quick_start_end <= 45, "the quick start is the README's first screen"
    assert [c.split()[1] for c in QUICK_COMMANDS if c.startswith("make")] == ["train", "test", "tb"]
    for command in QUICK_COMMANDS:
        assert command.startswith(("make ", ".venv/bin/python ")), command
    for page in PAGES:
        if page.name != "README.md":
            assert f"(docs/{page.name})" in README, f"README links docs/{page.name}"


@pytest.fixture(scope="module")
def quick_start(tmp_path_factory) -> tuple[Path, dict[str, subprocess.CompletedProcess]]:
    """Run the quick start's commands in order, as written, in a mirror of the checkout: the
    directory and each command's result (those of NOT_RUN left out)."""
    here = mirror_checkout(tmp_path_factory.mktemp("quick-start"))
    if make_would_install(here):
        pytest.skip("`make` would install .venv/ (no .venv/.installed): run `make install` first")
    results = {}
    for command in QUICK_COMMANDS:
        if command.split(" #")[0].strip() not in NOT_RUN:
            results[command] = run_shell(command, here)
    for program in QUICK_PYTHON:  # keyed by its text, which says what it needs
        results[program] = run_shell(".venv/bin/python -", here, stdin=program)
    return here, results


def _succeeded(result: subprocess.CompletedProcess) -> bool:
    return result.returncode == 0


def test_quick_start_trains_and_sweeps(quick_start):
    here, results = quick_start
    ran = [command for command in results if not uses_the_model(command)]
    assert any(command.startswith("make train") for command in ran)
    assert any(" -m " in command for command in ran)
    for command in ran:
        result = results[command]
        assert _succeeded(result), f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    runs = list(here.glob("outputs/*/*/metrics.json"))
    assert len(runs) == 1 and json.loads(runs[0].read_text())["test_acc"] >= 0.9
    assert (runs[0].parent / "checkpoints" / "best.pt").exists()
    sweeps = list(here.glob("multirun/*/*/multirun.yaml"))
    assert len(sweeps) == 1
    jobs = list(sweeps[0].parent.glob("*/metrics.json"))
    assert len(jobs) >= 2


def test_quick_start_uses_the_trained_model(quick_start):
    here, results = quick_start
    used = [command for command in results if uses_the_model(command)]
    assert used
    for command in used:
        result = results[command]
        assert _succeeded(result), f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    # `latest` names the one run and the one sweep of the quick start (a name the
    # scripts resolve): look in those directories themselves.
    (run,) = here.glob("outputs/*/*/metrics.json")
    (sweep,) = here.glob("multirun/*/*/multirun.yaml")
    assert (sweep.parent / "report.md").exists()
    if any("evaluate.py" in command for command in used):
        assert (run.parent / "evaluation.json").exists()
    predictions = [c for c in used if "predict.py" in c and "--out" in c]
    for command in predictions:
        words = shlex.split(command, comments=True)
        out = here / words[words.index("--out") + 1]
        rows = list(csv.reader(out.open()))
        assert len(rows) > 1 and len(rows[0]) >= 2  # a header: the prediction and its classes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_make_tb_serves_tensorboard(tmp_path):
    """`make tb` as the README writes it, with a port of this test's own (ARGS), answers."""
    (command,) = [c for c in QUICK_COMMANDS if c.startswith("make tb")]
    here = mirror_checkout(tmp_path)
    if make_would_install(here):
        pytest.skip("`make` would install .venv/ (no .venv/.installed): run `make install` first")
    port = _free_port()
    line = f'{command.split(" #")[0].strip()} ARGS="--host 127.0.0.1 --port {port}"'
    server = subprocess.Popen(
        ["bash", "-c", line],
        cwd=here,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # make, and the tensorboard it starts: one group to stop
    )
    try:
        status = _wait_for_http(f"http://127.0.0.1:{port}/", server)
    finally:
        subprocess.run(["kill", "--", f"-{server.pid}"], check=False)
        server.wait(timeout=30)
    assert status == 200, server.stderr.read().decode()[-2000:]


def _wait_for_http(url: str, server: subprocess.Popen, patience: float = 90) -> int | None:
    """The HTTP status ``url`` answers with once the server is up; None if it never is."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status
        except OSError:
            time.sleep(0.5)
    return None


# --- every train.py command of the pages composes ----------------------------------------------

# The add-a-model page trains a model it registers itself: tests/test_add_a_model.py runs it.
DOC_COMMANDS = [
    pytest.param(command, id=f"{page.name}: {command[:70]}")
    for page in PAGES
    if page.name != "add-a-model.md"
    for command in dict.fromkeys(train_commands(page.read_text()))
]
FLAGS = ("-m", "--multirun", "--resume", "--help", "--cfg", "job")


def train_overrides(command: str) -> list[str]:
    """The overrides of a command line, after scripts/train.py, with $HOME and the like
    expanded as the shell would (the comment and the flags left out)."""
    words = shlex.split(os.path.expandvars(command), comments=True)
    after = words[words.index("scripts/train.py") + 1 :]
    return [word for word in after if word not in FLAGS]


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """Jobs of a grid sweep that, together, take every value of every swept key: job i takes
    each key's value i (its last one when it has fewer). One job for a single run."""
    choices = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override():
            key = override.get_key_element()
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([override.input_line])
    jobs = max(len(values) for values in choices) if choices else 1
    return [[values[min(i, len(values) - 1)] for values in choices] for i in range(jobs)]


@pytest.mark.parametrize("command", DOC_COMMANDS)
def test_documented_train_command_composes(command):
    """Through the guard the command line passes first, then Hydra's composition and the
    schemas' checks (dlbasics.config.validate): no training. Data files named by data.path or
    data.root are the user's: only their parsing is checked."""
    overrides = train_overrides(command)
    try:
        refuse_code_in_arguments(overrides)
        for job in sweep_jobs(overrides):
            validate(compose_only(*job))
    except (HydraException, OmegaConfBaseException) as error:
        pytest.fail(f"{command}: {describe_hydra_error(error, overrides)}")
    except UserError as error:
        pytest.fail(f"{command}: {error}")


LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_links_between_pages_lead_somewhere(page):
    """Every relative link of README.md and docs/*.md names a file of the checkout, and its
    #anchor a heading of that file (GitHub's rule: lower case, spaces to hyphens)."""
    for target, anchor in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        linked = (page.parent / target).resolve()
        assert linked.exists(), f"{page.name}: {target}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.MULTILINE)
            slugs = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
            assert anchor[1:] in slugs, f"{page.name}: {target}{anchor}"

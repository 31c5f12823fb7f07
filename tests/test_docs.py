"""The documentation stays honest: its commands run, its tables match the results files, and no
tracked file records a path that only exists on one machine.

Fast: imports only the CLI's argument parser (commands are parsed, never run) and runs
``scripts/results_table.py --check`` (JSON and Markdown only) in a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vesselflow.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 260
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_FENCES = {"", "bash", "sh", "shell", "console"}
OPERATORS = {"&&", "||", "|", ";", "&", ";;"}
REDIRECTS = {">", ">>", "<", ">&", "&>", "<&", ">|"}
PLACEHOLDER = re.compile(r"<([A-Za-z][\w./:-]*)>")  # <folder>, <id>: a word, not a redirect

# Absolute paths of one machine: home folders, this project's work tree, temp folders, mounts.
MACHINE_PATH = re.compile(r"(?<![\w./~-])(/work/|/home/|/Users/|/root/|/tmp/|/mnt/|/private/)"
                          r"|\b[A-Za-z]:\\+Users\b")
# Files where a recorded command lives: there a venv's entry point is a machine detail too.
RECORDS = ("README.md", "docs/", "results/", "vesselflow/weights/")
VENV_PREFIX = re.compile(r"\.venv/bin/")
# (file, exact match, why it is not a machine path). Nothing else may match.
ALLOWED = {
    (".gitignore", "/tmp/"): "a gitignore pattern: the repository's own tmp/ folder, anchored "
                             "at the repository root",
}
BINARY_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif", ".npz", ".npy",
                   ".safetensors", ".pt", ".zip", ".gz", ".whl", ".ico", ".pdf")


# -- command lines ------------------------------------------------------------------------

def _shell_lines(text: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, whether it is inside a shell code block) of every code line and
    inline code span (which may wrap over lines, as Markdown allows); continuation lines
    (``\\``) are joined to their first line."""
    fence, pending, start = None, "", 0
    prose: list[tuple[int, str]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip().lower()
            prose.append((n, ""))  # a fence ends any inline span
            continue
        if fence is None:
            prose.append((n, line))
            continue
        if fence not in SHELL_FENCES:
            continue
        if not pending:
            start = n
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        yield start, pending + stripped, True
        pending = ""
    joined = "\n".join(line for _, line in prose)
    for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", joined):
        if "\n\n" not in m.group(1):  # a span never crosses a paragraph
            n = prose[joined.count("\n", 0, m.start())][0]
            yield n, " ".join(m.group(1).split()), False


def _words(command: str) -> list[str]:
    """Shell words of a line, placeholders kept as words, redirections dropped."""
    lex = shlex.shlex(PLACEHOLDER.sub(r"'<\1>'", command), posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    words = list(lex)
    out, skip = [], False
    for i, w in enumerate(words):
        if skip:
            skip = False
        elif w in REDIRECTS:
            skip = True
        elif w.isdigit() and i + 1 < len(words) and words[i + 1] in REDIRECTS:
            continue  # the fd of "2>&1"
        else:
            out.append(w)
    return out


def vesselflow_commands(line: str) -> list[list[str]]:
    """The argument lists of every ``vesselflow`` command in a shell line: after environment
    assignments and ``&&``, ``|``, ``;``, ``&``; also ``python -m vesselflow`` and
    ``torchrun ... -m vesselflow``."""
    try:
        words = _words(line)
    except ValueError:  # unbalanced quotes: prose, not a command
        return []
    found, part = [], []
    for w in [*words, ";"]:
        if w not in OPERATORS:
            part.append(w)
            continue
        while part and re.fullmatch(r"[A-Za-z_]\w*=\S*", part[0]):
            part = part[1:]
        if part and part[0] == "vesselflow":
            found.append(part[1:])
        elif "-m" in part and part.index("-m") + 1 < len(part) \
                and part[part.index("-m") + 1] == "vesselflow":
            found.append(part[part.index("-m") + 2:])
        part = []
    return found


def _parse(args: list[str]) -> str | None:
    """None if the CLI's parser accepts ``args``, else its error message."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(args)
    except SystemExit as e:
        if e.code not in (0, None):
            return err.getvalue().strip().splitlines()[-1] if err.getvalue() else str(e.code)
    return None


def command_problems(text: str) -> list[str]:
    """Every command line of a Markdown text that the CLI's parser refuses."""
    problems = []
    for n, line, in_block in _shell_lines(text):
        for args in vesselflow_commands(line):
            error = _parse(args)
            # An inline span of command names only (`vesselflow sr upscale`) names a command
            # rather than running one: it must exist, its required options may be left out.
            if error and not in_block and all(not a.startswith("-") for a in args):
                error = _parse([*args, "--help"])
            if error:
                problems.append(f"line {n}: vesselflow {shlex.join(args)}\n    {error}")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_documented_command_parses(doc: Path) -> None:
    problems = command_problems(doc.read_text())
    assert not problems, f"{doc.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_command_extraction_catches_what_a_reader_would_run() -> None:
    """The extractor sees commands behind prefixes, operators and continuations, and the
    parser check refuses a misspelt option (the check can fail)."""
    text = "\n".join([
        "```bash",
        "OMP_NUM_THREADS=1 vesselflow segment -i <folder> -o out/ \\",
        "    --samples 4 && vesselflow bench --drive d | tee log &",
        "torchrun --nproc_per_node=2 -m vesselflow segment -i a -o b > run.log 2>&1",
        "vesselflow segment -i a -o b --sampels 4",
        "```",
        "Run `vesselflow sr upscale` or `vesselflow segment -i x -o y --no-such-option`, or",
        "`vesselflow segment -i x -o y",
        "--wrapped-bad-option` over two lines.",
    ])
    problems = command_problems(text)
    assert len(problems) == 3, problems
    assert "line 5" in problems[0] and "--sampels" in problems[0]
    assert "line 7" in problems[1] and "--no-such-option" in problems[1]
    assert "line 8" in problems[2] and "--wrapped-bad-option" in problems[2]
    assert vesselflow_commands("OMP_NUM_THREADS=1 vesselflow bench --drive d | tee x") == \
        [["bench", "--drive", "d"]]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files(doc: Path) -> None:
    """Links and images between the docs survive moves: each relative target exists."""
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        path = target.split("#")[0]
        if path and "://" not in path and not (doc.parent / path).exists():
            missing.append(target)
    assert not missing, f"{doc.relative_to(ROOT)}: links to missing files {missing}"


# -- machine paths ------------------------------------------------------------------------

def _repository_text_files() -> list[str]:
    """Tracked files and new ones not yet committed (not the ignored), text only."""
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others",
                          "--exclude-standard", "-z"], capture_output=True, check=True)
    files = []
    for name in out.stdout.decode().split("\0"):
        path = ROOT / name
        if not name or name.lower().endswith(BINARY_SUFFIXES) or not path.is_file():
            continue
        if b"\0" in path.read_bytes()[:8192]:
            continue
        files.append(name)
    return files


def machine_paths(name: str, text: str) -> list[str]:
    """'file:line: match' for every machine path (and, in recorded commands, venv prefix)
    that the allow-list does not explain."""
    found = []
    for n, line in enumerate(text.splitlines(), start=1):
        hits = [m.group(0) for m in MACHINE_PATH.finditer(line)]
        if name.startswith(RECORDS):
            hits += [m.group(0) for m in VENV_PREFIX.finditer(line)]
        found += [f"{name}:{n}: {hit!r} in {line.strip()[:120]}" for hit in hits
                  if (name, hit) not in ALLOWED]
    return found


def test_no_machine_paths_in_repository_files() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    this = str(Path(__file__).relative_to(ROOT))  # its patterns name the paths it forbids
    found = []
    for name in _repository_text_files():
        if name != this:
            found += machine_paths(name, (ROOT / name).read_text(errors="replace"))
    assert not found, "absolute machine paths (record repository-relative ones):\n" + \
        "\n".join(found)


def test_machine_path_patterns() -> None:
    """The patterns catch what the old records held and leave URLs and relative paths alone."""
    bad = ["/work/wt-15/vesselflow/__main__.py train", "/home/ana/DRIVE", "/Users/bo/x.png",
           "--out /tmp/DRIVE", r"C:\Users\ana\DRIVE", "/root/data"]
    good = ["https://download.pytorch.org/whl/cu121", "../shared/data/DRIVE", "runs/tmp/x",
            "results/work/x", "~/Downloads/test.zip", "/usr/bin/chromium"]
    assert all(machine_paths("notes.md", line) for line in bad)
    assert not any(machine_paths("notes.md", line) for line in good)
    assert machine_paths("results/x.json", '"command": ".venv/bin/vesselflow train"')
    assert not machine_paths("scripts/run.sh", "VF=${VF:-.venv/bin/vesselflow}")


def test_shipping_records_commands_a_clone_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The training loop records sys.argv as run; what the ship scripts write into config.json
    and MODEL_CARD.md is ``vesselflow ...`` with repository-relative paths."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import shipping

    root = shipping.ROOT
    recorded = {
        "/work/wt-15/vesselflow/__main__.py train --out runs/a": "vesselflow train --out runs/a",
        ".venv/bin/vesselflow train --out runs/a": "vesselflow train --out runs/a",
        f"{root}/.venv/bin/vesselflow sr train --data=../shared/data/SR --out {root}/runs/b":
            "vesselflow sr train --data=../shared/data/SR --out runs/b",
        f"{root}/.venv/bin/python -m vesselflow evaluate --out {root}/results/c":
            "vesselflow evaluate --out results/c",
    }
    for command, expected in recorded.items():
        assert shipping.repo_command(command) == expected
    meta = shipping.training_meta(
        {"command": next(iter(recorded)), "history": [{"command": next(iter(recorded)),
                                                       "from_step": 0}],
         "train": {"out": f"{root}/runs/a", "drive": "../shared/data/DRIVE"}}, {}, "DRIVE")
    assert meta["command"] == meta["history"][0]["command"] == "vesselflow train --out runs/a"
    assert meta["options"] == {"out": "runs/a", "drive": "../shared/data/DRIVE"}
    assert shipping.commands(meta) == "`vesselflow train --out runs/a`"


# -- generated tables and the README's length -----------------------------------------------

def test_results_tables_match_the_results_files() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "results_table.py"),
                           "--check"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr + done.stdout


def test_readme_is_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"

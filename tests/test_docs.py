"""The documentation is checked like code: every ``barkwatch`` command shown in the README and ``docs/``
exists with the options shown, every benchmark script shown takes the options shown, and every relative link
resolves."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from functools import lru_cache

import pytest
import typer
from helpers import REPO

from barkwatch.cli import app

PAGES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"), REPO / "benchmarks" / "README.md",
                REPO / "models" / "README.md", REPO / "systemd" / "README.md", REPO / "samples" / "README.md"])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
PROMPT = re.compile(r"^(?:\$\s+|sudo\s+|(?:\S*/)?\.venv/bin/)+")


def code_lines(text: str) -> list[str]:
    """Shell lines of a page: fenced and indented code blocks (continuation lines joined), and inline code."""
    lines, fenced, pending = [], False, ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("```"):
            fenced = not fenced
            continue
        block = fenced or raw.startswith("    ")
        if block:
            line = pending + raw.strip()
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            lines.append(line)
        else:
            lines += INLINE_CODE.findall(raw)
    return lines


def commands_in(text: str, program: str) -> list[list[str]]:
    """Each shown invocation of ``program`` (after a prompt, sudo or .venv/bin/), as words; a command line
    chained with && or | counts each part."""
    found = []
    for line in code_lines(text):
        for part in re.split(r"\s*(?:&&|\|\||\|)\s*", line):
            part = PROMPT.sub("", part.strip())
            if not part.startswith(program + " ") and part != program:
                continue
            try:
                words = shlex.split(part.split("  #")[0], comments=True)
            except ValueError:
                words = part.split()
            found.append(words)
    return found


def options_of(words: list[str]) -> list[str]:
    return [w.split("=")[0] for w in words if re.match(r"^--?[A-Za-z][\w-]*", w)]


@lru_cache(maxsize=None)
def cli_commands() -> dict:
    return typer.main.get_command(app).commands


def test_the_pages_show_commands_at_all():
    shown = [c for page in PAGES for c in commands_in(page.read_text(), "barkwatch")]
    assert len(shown) > 30  # the parser finds them: a page format it cannot read would pass vacuously
    assert {c[1] for c in shown if len(c) > 1} >= {"detect", "listen", "train", "calibrate", "events"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_barkwatch_command_shown_exists_with_the_options_shown(page):
    problems = []
    for words in commands_in(page.read_text(), "barkwatch"):
        if len(words) < 2 or words[1].startswith("-"):
            continue  # `barkwatch --help` and the like
        name = words[1]
        if name not in cli_commands():
            if re.match(r"^[a-z][a-z-]*$", name):  # a word, not prose like "barkwatch's"
                problems.append(f"{' '.join(words)}: no command {name!r}")
            continue
        known = {o for p in cli_commands()[name].params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
        problems += [f"{' '.join(words)}: {name} has no option {o}" for o in options_of(words[2:]) if o not in known]
    assert not problems, "\n".join(problems)


@lru_cache(maxsize=None)
def script_help(script: str, subcommand: str | None) -> str:
    args = [sys.executable, str(REPO / script), *([subcommand] if subcommand else []), "--help"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, f"{' '.join(args[1:])} failed: {done.stderr[-2000:]}"
    return done.stdout


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_benchmark_shown_exists_with_the_options_shown(page):
    problems = []
    for words in commands_in(page.read_text(), "python"):
        if len(words) < 2 or not words[1].startswith("benchmarks/") or not words[1].endswith(".py"):
            continue
        script = words[1]
        if not (REPO / script).is_file():
            problems.append(f"{' '.join(words)}: no {script}")
            continue
        after = words[2:words.index("--")] if "--" in words else words[2:]  # after --: barkwatch's options
        subcommand = after[0] if after and not after[0].startswith("-") else None  # household.py build ...
        shown = script_help(script, subcommand)
        problems += [f"{' '.join(words)}: {script} has no option {o}" for o in options_of(after)
                     if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", shown)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # a web address, or an anchor on the same page
        path = target.split("#")[0]
        if not (page.parent / path).exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)}: broken links: {broken}"


def test_a_wrong_option_in_a_page_is_caught(tmp_path):
    """The checker itself: a made-up option and a made-up link are found."""
    text = "Run it:\n\n    barkwatch detect x.wav --no-such-flag\n\nSee [here](nowhere.md).\n"
    (words,) = commands_in(text, "barkwatch")
    known = {o for p in cli_commands()["detect"].params for o in p.opts}
    assert "--no-such-flag" in options_of(words) and "--no-such-flag" not in known
    assert LINK.findall(text) == ["nowhere.md"] and not (tmp_path / "nowhere.md").exists()


def test_every_package_setup_installs_for_the_tests_is_named_in_the_testing_page():
    setup = (REPO / "scripts" / "setup").read_text()
    line = next(x for x in setup.splitlines() if x.startswith('[ "$tests" = 0 ] || APT_PACKAGES='))
    packages = line.split('"$APT_PACKAGES ', 1)[1].rstrip('"').split()
    named = set(INLINE_CODE.findall((REPO / "docs" / "testing.md").read_text()))
    assert len(packages) >= 10 and not set(packages) - named, set(packages) - named

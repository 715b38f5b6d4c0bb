"""Every command quoted in a ```bash block of the README and the book's pages works, on smoke.

``mu`` commands go through the real CLI (argument parsing, chapter and parameter checks); those
that are cheap on smoke run for real, the others stop where the expensive work would start.
papermill commands are checked against the parameters cell of the chapter they execute: an
unknown name is what papermill itself only warns about before running the defaults.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mu_lib import book, cli
from mu_lib.book_pages import check_parameters, parameters, rerun_box

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md"))]
# installs and system changes: not run by a test
SKIP = ("pip", "sudo", "conda", "export", "source", "apt-get")


def bash_commands(path: Path) -> list[str]:
    """The command lines of the ```bash blocks of a page (comments and `[...]` options dropped)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(), re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if not words:
                continue
            text = shlex.join(words)
            for part in re.split(r" '?\|'? ", text):  # `mu cache ls | mu cache clear`: alternatives
                out.append(re.sub(r" '?\[--[^]]*\]'?", "", part))  # optional flags shown as [--x]
    return out


DOCUMENTED = [(p.name, c) for p in DOCS for c in bash_commands(p)]


def test_the_pages_quote_commands():
    assert {"README.md", "intro.md", "how_to_run.md", "profiles.md"} <= {p for p, _ in DOCUMENTED}
    assert any(c.startswith("papermill ") for _, c in DOCUMENTED)


def _papermill_ok(words: list[str]) -> None:
    chapter = Path(words[1]).name.split(".")[0]
    src = ROOT / "notebooks" / f"{chapter}.md"
    assert src.exists(), f"papermill runs {words[1]}, which is no chapter"
    names, i = [], 3
    while i < len(words):
        flag = words[i]
        if flag == "-p":
            key, value = words[i + 1], words[i + 2]
            names.append(key)  # papermill passes "[0, 1]" as a string: lists need -y
            assert value.lstrip()[:1] not in "[{", f"-p {key} {value}: use -y for a list"
            i += 3
        elif flag == "-y":  # papermill's -y is one YAML mapping
            mapping = yaml.safe_load(words[i + 1])
            assert isinstance(mapping, dict), (
                f"papermill -y takes 'name: value', got {words[i + 1]}"
            )
            names += list(mapping)
            i += 2
        else:
            i += 1
    check_parameters(src, chapter, names)


def _run_mu(argv: list[str], monkeypatch, tmp_path) -> int:
    """The CLI for real, except that a chapter is not executed nor the HTML built, and a
    non-smoke `mu run`/`mu sweep` stops after its configuration is checked."""

    def execute(root, name, prof, params=None, env=None):
        out = root / "book" / "generated"
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.ipynb").write_text("{}")  # what papermill would leave
        return 0.1

    monkeypatch.setattr(book, "execute_chapter", execute)
    monkeypatch.setattr(book, "reuse_inputs", lambda: {"package": "p"})
    monkeypatch.setattr(book.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0))
    monkeypatch.setattr(book, "repo_root", lambda: ROOT)
    monkeypatch.setenv("MU_RESULTS_DIR", str(tmp_path / "results"))
    args = cli.build_parser().parse_args(argv)
    if argv[0] in ("run", "sweep") and "smoke" not in argv:
        if argv[0] == "run":
            cli.config_from_args(args)
        return 0
    if argv[0] == "book":
        # status.json would be written under book/generated: point the build at tmp_path
        monkeypatch.setattr(book, "repo_root", lambda: _fake_root(tmp_path))
    return cli.main(argv)


def _fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    if not root.exists():
        root.mkdir()
        (root / "notebooks").symlink_to(ROOT / "notebooks")
        (root / "_toc.yml").symlink_to(ROOT / "_toc.yml")
    return root


@pytest.mark.parametrize(("page", "command"), DOCUMENTED)
def test_documented_command_runs(page, command, monkeypatch, tmp_path):
    words = shlex.split(command)
    while "=" in words[0] and not words[0].startswith("-"):  # OMP_NUM_THREADS=2 python ...
        words = words[1:]
    if words[0] in SKIP:
        pytest.skip(f"{words[0]}: changes the environment")
    if words[0] == "make":
        targets = re.findall(r"^([a-z]+):", (ROOT / "Makefile").read_text(), re.M)
        assert all(w in targets for w in words[1:] if "=" not in w), command
    elif words[0] == "jupytext":
        assert (ROOT / words[-1]).exists(), command
    elif words[0] == "papermill":
        _papermill_ok(words)
    elif words[0] == "python" and words[1].startswith("benchmarks/"):
        # measurements take minutes to hours: the script, and every option quoted, must exist
        assert (ROOT / words[1]).exists(), command
        done = subprocess.run([sys.executable, words[1], "--help"], cwd=ROOT, capture_output=True)
        assert done.returncode == 0, done.stderr[-2000:]
        flags = [w.split("=")[0] for w in words[2:] if w.startswith("--")]
        assert all(f.encode() in done.stdout for f in flags), command
    elif words[:2] == ["python", "-m"] and words[2].startswith("assignments."):
        # building or grading runs otter (tests/test_assignments.py does that): here the module,
        # its options and the assignment named must exist
        sys.path.insert(0, str(ROOT))
        from assignments import tools

        done = subprocess.run(
            [sys.executable, *words[1:3], "--help"], cwd=ROOT, capture_output=True
        )
        assert done.returncode == 0, done.stderr
        flags = [w for w in words[3:] if w.startswith("--")]
        assert all(f.encode() in done.stdout for f in flags), command
        names = [w for w in words[3:] if not w.startswith("-")][:1]
        assert all(n in tools.assignments() for n in names), command
    elif words[0] == "mu" or words[:3] == ["python", "-m", "mu_lib"]:
        argv = words[1:] if words[0] == "mu" else words[3:]
        if argv == ["--version"]:
            done = subprocess.run(
                [sys.executable, "-m", "mu_lib", "--version"], capture_output=True
            )
            assert done.returncode == 0 and b"mu_lib" in done.stdout
            return
        assert _run_mu(argv, monkeypatch, tmp_path) == 0, command
    else:
        pytest.fail(f"{page}: the test does not know how to check {command!r}")


@pytest.mark.parametrize("chapter", book.available_chapters(ROOT))
def test_the_rerun_box_commands_are_valid(chapter, monkeypatch, tmp_path):
    src = ROOT / "notebooks" / f"{chapter}.md"
    box = rerun_box(chapter, parameters(src), {"profile": "smoke"})
    lines = [ln for ln in re.findall(r"```bash\n(.*?)```", box, re.S)[0].splitlines() if ln]
    assert _run_mu(shlex.split(lines[0])[1:] + ["--no-build"], monkeypatch, tmp_path) == 0
    pm = re.findall(r"```bash\n(.*?)```", box, re.S)[1].splitlines()
    _papermill_ok(shlex.split(pm[1]))


def test_mu_book_rejects_an_unknown_parameter_before_running(monkeypatch, tmp_path, capsys):
    rc = _run_mu(["book", "--chapter", "appB_pra", "-p", "method", "salun"], monkeypatch, tmp_path)
    err = capsys.readouterr().err
    assert rc == 2 and "no parameter 'method'" in err and "methods" in err


def test_a_list_given_with_p_is_read_as_yaml():
    assert cli.chapter_params([("seeds", "[0, 1, 2]"), ("seed", "3")], [("m", "[a, b]")]) == {
        "seeds": [0, 1, 2],
        "seed": "3",
        "m": ["a", "b"],
    }


def test_a_failing_chapter_is_one_line_naming_it_and_its_notebook(tmp_path):
    # an alpha outside [0, 1] fails before any training (it used to fail after the runs)
    argv = ["book", "--chapter", "appB_pra", "--profile", "smoke", "-y", "alphas", "[5]"]
    cache = tmp_path / "cache"
    done = subprocess.run(
        [sys.executable, "-m", "mu_lib", *argv, "--no-build"],
        cwd=_fake_root(tmp_path),
        capture_output=True,
        text=True,
        env={**os.environ, "MU_RESULTS_DIR": str(tmp_path / "r"), "MU_CACHE_DIR": str(cache)},
    )
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2
    assert last.startswith("mu: error: chapter appB_pra failed") and ".ipynb" in last
    assert "CalledProcessError" not in done.stderr
    assert "alpha must be in [0, 1], got 5" in done.stderr
    assert not list(cache.glob("store/models/*")), "the bad alpha was caught after training"


def test_chapters_run_longest_first_and_a_cold_build_starts_with_claims():
    names = ["s3_1_over_unlearning", "s5_2_main_results", "appB_pra", "claims"]
    cold = book.run_order(names, {})
    assert cold[:2] == ["claims", "s5_2_main_results"]  # the known long ones lead a cold build
    warm = book.run_order(
        names, {n: {"seconds": s} for n, s in zip(names, (50, 90, 5, 300), strict=True)}
    )
    assert warm == ["claims", "s5_2_main_results", "s3_1_over_unlearning", "appB_pra"]

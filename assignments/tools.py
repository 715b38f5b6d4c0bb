"""Build the otter-grader assignments and grade submissions locally (no Docker).

Each assignment is a master notebook ``assignments/<name>/<name>.ipynb`` in Otter Assign's
format.  ``build`` runs ``otter assign`` into ``assignments/build/<name>/`` (ignored by git: the
autograder zip carries a timestamp), giving ``student/<name>.ipynb`` to hand out and
``autograder/`` with the solutions notebook and the autograder zip.  ``grade`` runs ``otter run``
on one submission in this environment (so ``mu_lib`` must be importable) and returns the scores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = HERE / "build"
# The autograder's pip requirements (torch and this package); every master's config names it.
REQUIREMENTS = HERE / "requirements.txt"


class AssignmentError(RuntimeError):
    """A bad assignment name, a failed otter call or a missing file; the message says which."""


def assignments() -> list[str]:
    """Names of the assignments (folders holding a master notebook of the same name)."""
    return sorted(p.parent.name for p in HERE.glob("*/*.ipynb") if p.stem == p.parent.name)


def master_path(name: str) -> Path:
    path = HERE / name / f"{name}.ipynb"
    if not path.exists():
        raise AssignmentError(f"unknown assignment {name!r}; choose one of {assignments()}")
    return path


def _otter(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "otter", *args]
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        tail = (out.stdout + out.stderr)[-4000:]
        raise AssignmentError(f"`otter {' '.join(args)}` failed (exit {out.returncode}):\n{tail}")
    return out


def build(name: str, out: Path | None = None, run_tests: bool = True) -> Path:
    """``otter assign`` the master of ``name`` into ``out`` (default ``assignments/build/<name>``).

    With ``run_tests`` otter also executes the solutions against every test (slower, a check of
    the master itself).  Returns the output folder.
    """
    master = master_path(name)
    out = Path(out) if out is not None else BUILD / name
    if out.exists():
        import shutil

        shutil.rmtree(out)
    args = ["assign", str(master), str(out)]
    if not run_tests:
        args.append("--no-run-tests")
    _otter(*args)
    return out


def autograder_zip(name: str, out: Path | None = None) -> Path:
    """The autograder zip of ``name``, building it first if missing or older than the master."""
    out = Path(out) if out is not None else BUILD / name
    zips = sorted((out / "autograder").glob(f"{name}-autograder_*.zip"))
    if not zips or zips[-1].stat().st_mtime < master_path(name).stat().st_mtime:
        build(name, out, run_tests=False)
        zips = sorted((out / "autograder").glob(f"{name}-autograder_*.zip"))
    if not zips:
        raise AssignmentError(f"otter assign produced no autograder zip under {out}")
    return zips[-1]


def solution_notebook(name: str, out: Path | None = None) -> Path:
    """The solutions notebook otter writes next to the autograder zip."""
    out = Path(out) if out is not None else BUILD / name
    autograder_zip(name, out)
    return out / "autograder" / f"{name}.ipynb"


@dataclass
class Grade:
    """Scores per question, as otter reports them."""

    assignment: str
    questions: dict[str, tuple[float, float]] = field(default_factory=dict)
    output: dict[str, str] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return sum(s for s, _ in self.questions.values())

    @property
    def possible(self) -> float:
        return sum(m for _, m in self.questions.values())

    @property
    def full_marks(self) -> bool:
        return bool(self.questions) and self.score == self.possible

    def table(self) -> str:
        width = max([len(q) for q in self.questions] + [8])
        lines = [f"{'question':{width}s}  score"]
        for q, (s, m) in self.questions.items():
            lines.append(f"{q:{width}s}  {s:g} / {m:g}")
        lines.append(f"{'total':{width}s}  {self.score:g} / {self.possible:g}")
        return "\n".join(lines)


def grade(name: str, submission: str | Path, out: Path | None = None) -> Grade:
    """Grade one submitted notebook of assignment ``name`` with ``otter run`` (no container)."""
    submission = Path(submission).resolve()
    if not submission.exists():
        raise AssignmentError(f"no submission at {submission}")
    zip_path = autograder_zip(name, out)
    with tempfile.TemporaryDirectory(prefix=f"grade-{name}-") as tmp:
        _otter("run", "-a", str(zip_path), "-o", tmp, "--no-logo", str(submission))
        results = json.loads((Path(tmp) / "results.json").read_text())
    g = Grade(name)
    for t in results.get("tests", []):
        if t.get("max_score") is None:  # the "Public Tests" summary entry
            continue
        g.questions[t["name"]] = (float(t.get("score") or 0.0), float(t["max_score"]))
        g.output[t["name"]] = t.get("output", "")
    return g

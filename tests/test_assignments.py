"""The otter-grader assignments: the masters build, their solutions get full marks from the local
grader, and a broken submission (a masked softmax that does not renormalise) loses points.

Everything is built into a temporary folder (never into the repository) and graded with
``otter run``, exactly as ``python -m assignments.grade`` does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("otter", reason="the `assign` extra (otter-grader) is not installed")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `assignments` lives at the root

from assignments import tools  # noqa: E402
from assignments.grade import main as grade_main  # noqa: E402

NAMES = ["masked_softmax", "pra_alpha", "defence"]


def test_the_three_assignments_exist():
    assert set(NAMES) <= set(tools.assignments())
    with pytest.raises(tools.AssignmentError, match="unknown assignment"):
        tools.master_path("nope")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("assignments")
    return {n: tools.build(n, root / n, run_tests=False) for n in NAMES}


def test_student_versions_hide_solutions_and_hidden_tests(built):
    nb = nbformat.read(built["masked_softmax"] / "student" / "masked_softmax.ipynb", 4)
    text = "\n".join(c.source for c in nb.cells)
    assert "def masked_softmax" in text and "grader.check(" in text
    assert "masked_fill" not in text, "the solution leaked into the student notebook"
    assert "test_conditional_probability_and_stability" not in json.dumps(nb.metadata)
    for name in NAMES:
        assert (built[name] / "student" / f"{name}.ipynb").exists()
        assert list((built[name] / "autograder").glob(f"{name}-autograder_*.zip"))


def test_autograder_zips_install_torch_and_this_package(built):
    import zipfile

    for name in NAMES:
        zip_path = next((built[name] / "autograder").glob(f"{name}-autograder_*.zip"))
        # otter 7 merges the requirements into the zip's environment.yml (pip section)
        env = zipfile.ZipFile(zip_path).read("environment.yml").decode()
        assert "- torch>=" in env and "- unlearning-blindspots @ git+" in env, name


@pytest.mark.parametrize("name", NAMES)
def test_master_solutions_get_full_marks(built, name):
    g = tools.grade(name, tools.solution_notebook(name, built[name]), built[name])
    assert g.questions, "otter reported no question"
    assert g.full_marks, g.table() + "\n" + "\n".join(g.output.values())


WRONG_MASKED_SOFTMAX = """
import torch


def masked_softmax(logits, forget_classes):
    # the classic slip: zero the forget classes of the full softmax, forget to renormalise
    p = torch.softmax(logits, dim=1).clone()
    p[:, list(forget_classes)] = 0.0
    return p
"""


def test_wrong_submission_loses_points(built, tmp_path, monkeypatch, capsys):
    sol = tools.solution_notebook("masked_softmax", built["masked_softmax"])
    nb = nbformat.read(sol, 4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "def masked_softmax" in c.source]
    assert len(cells) == 1
    cells[0].source = WRONG_MASKED_SOFTMAX.strip()
    bad = tmp_path / "submission.ipynb"
    nbformat.write(nb, bad)

    # grade it with the command-line grader, pointed at the temporary build
    monkeypatch.setattr(tools, "BUILD", built["masked_softmax"].parent)
    scores = tmp_path / "scores.json"
    code = grade_main(["masked_softmax", str(bad), "--require-full", "--json", str(scores)])
    assert code == 1, "--require-full must fail a submission without full marks"
    assert "q1_masked_softmax" in capsys.readouterr().out
    q = json.loads(scores.read_text())["questions"]
    score, possible = q["q1_masked_softmax"]
    assert score == 0 < possible
    # the later question builds on the student's masked_softmax, so OU@eps is wrong as well
    assert q["q3_ou_eps"][0] < q["q3_ou_eps"][1]
    # the question that does not use it keeps its points
    assert q["q2_js_divergence"][0] == q["q2_js_divergence"][1]

"""Publishing: the Pages workflow runs the README's book command on the same data as CI, and
CITATION.cff is valid YAML with the keys the Citation File Format requires."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import mu_lib

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def readme_command(word: str) -> str:
    """The command on the README line that contains ``word`` inside a fenced block, comment cut."""
    text = (ROOT / "README.md").read_text()
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if word in line:
                return line.split("#", 1)[0].strip()
    pytest.fail(f"README.md has no fenced line containing {word!r}")


@pytest.fixture(scope="module")
def workflow() -> dict:
    wf = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(wf, dict) and "jobs" in wf
    return wf


def steps(wf: dict) -> list[dict]:
    return [s for job in wf["jobs"].values() for s in job.get("steps", [])]


def run_lines(wf: dict) -> list[str]:
    return [ln.strip() for s in steps(wf) for ln in str(s.get("run", "")).splitlines()]


def uses(wf: dict) -> list[str]:
    return [s["uses"].split("@")[0] for s in steps(wf) if "uses" in s]


def test_workflow_runs_the_readme_book_command(workflow):
    cmd = readme_command("make book")
    assert cmd.startswith("make book")
    assert cmd in run_lines(workflow), f"the workflow must run {cmd!r} as the README says"


def test_workflow_installs_the_dataset_like_ci(workflow):
    assert any("apt-get install -y dataset-fashion-mnist" in ln for ln in run_lines(workflow))
    ci = (ROOT / ".ci" / "run").read_text()
    assert "dataset-fashion-mnist" in ci  # the same package as the CI entry point


def test_workflow_deploys_to_pages_and_caches(workflow):
    used = uses(workflow)
    for action in ("actions/checkout", "actions/upload-pages-artifact", "actions/deploy-pages"):
        assert action in used, action
    # the uploaded folder is where `mu book` writes the HTML
    upload = next(s for s in steps(workflow) if s.get("uses", "").startswith("actions/upload-"))
    assert upload["with"]["path"].rstrip("/") == "_build/html"
    perms = workflow["permissions"]
    assert perms["pages"] == "write" and perms["id-token"] == "write"
    # pip is cached (setup-python) and so is the result cache
    setup = next(s for s in steps(workflow) if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["cache"] == "pip"
    cache = next(s for s in steps(workflow) if s.get("uses", "").startswith("actions/cache"))
    assert "MU_CACHE_DIR" in cache["with"]["path"]
    assert "MU_CACHE_DIR" in workflow["jobs"]["build"]["env"]
    # PyYAML reads the key `on` as True
    triggers = workflow.get("on", workflow.get(True))
    assert "push" in triggers and "workflow_dispatch" in triggers


def test_citation_cff():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    for key in ("cff-version", "message", "title", "authors"):
        assert cff.get(key), key
    assert cff["cff-version"] == "1.2.0"
    assert cff["type"] == "software"
    assert str(cff["version"]) == mu_lib.__version__
    assert all("name" in a or "family-names" in a for a in cff["authors"])
    refs = cff["references"]
    paper = [r for r in refs if "Prototypical Relearning Attack" in r["title"]]
    assert len(paper) == 1
    assert paper[0]["type"] and paper[0]["authors"]
    for a in paper[0]["authors"]:
        assert a.get("family-names") or a.get("name")

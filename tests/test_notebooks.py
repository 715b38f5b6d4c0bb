"""Every chapter runs end to end through papermill on the smoke profile (cell errors fail)."""

import os
from pathlib import Path

import pytest

from mu_lib.book import CHAPTERS, available_chapters, execute_chapter
from mu_lib.book_pages import page_problems, result_problems

ROOT = Path(__file__).resolve().parents[1]


def test_every_chapter_of_the_design_exists_and_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    missing = [c for c in CHAPTERS if c not in available_chapters(ROOT)]
    assert not missing, f"chapters without a notebook: {missing}"
    assert all(f"book/generated/{c}" in toc for c in CHAPTERS)


@pytest.mark.parametrize("name", available_chapters(ROOT))
def test_chapter_runs_on_smoke(name, tmp_path):
    secs = execute_chapter(ROOT, name, "smoke", out_dir=tmp_path)
    out = tmp_path / f"{name}.ipynb"
    assert out.exists() and secs > 0
    text = out.read_text()
    assert '"ename"' not in text  # no error output in any cell
    # nothing on the page that should not be: warnings, path reprs, injected parameters
    assert page_problems(out) == []
    results = Path(os.environ["MU_RESULTS_DIR"])
    assert result_problems(results) == []  # every saved result names its data and provenance

"""The book's pages are clean and say what produced them: no warnings, path reprs, tracebacks or
papermill's injected-parameters cell on a page; a re-run box on every chapter; every saved
result names its real dataset (beside the paper's it stands in for) and its provenance."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from mu_lib.book import execute_chapter
from mu_lib.book_pages import finish_notebook, page_problems, result_problems
from mu_lib.labels import STANDS_IN, method_label, relabel_frame
from mu_lib.report import mean_std, style_table

ROOT = Path(__file__).resolve().parents[1]


def _notebook(tmp_path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    title = nbformat.v4.new_markdown_cell("# A chapter")
    params = nbformat.v4.new_code_cell('profile = "cpu"')
    params.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell('# Parameters\nprofile = "smoke"\n')
    injected.metadata["tags"] = ["injected-parameters"]
    body = nbformat.v4.new_code_cell("save()")
    body.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="x.py:3: UserWarning: n_jobs\n"),
        nbformat.v4.new_output(
            "execute_result", data={"text/plain": "PosixPath('book/generated/a.csv')"}
        ),
    ]
    nb.cells = [title, params, injected, body]
    path = tmp_path / "ch.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_page_problems_finds_what_the_old_build_left_on_pages(tmp_path):
    found = page_problems(_notebook(tmp_path))
    assert any("injected parameters are shown" in p for p in found)
    assert any("UserWarning" in p for p in found)
    assert any("PosixPath" in p for p in found)
    assert "no re-run box" in found


def test_finish_notebook_hides_injected_parameters_and_adds_the_box_and_install_cell(tmp_path):
    path = _notebook(tmp_path)
    finish_notebook(path, "appB_pra", ROOT / "notebooks" / "appB_pra.md", {"profile": "smoke"})
    finish_notebook(path, "appB_pra", ROOT / "notebooks" / "appB_pra.md", {"profile": "smoke"})
    nb = nbformat.read(str(path), as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert sum("rerun-box" in t for t in tags) == 1  # a second pass adds nothing
    assert "launch-only" in tags[0] and "remove-cell" in tags[0]
    assert "find_spec" in nb.cells[0].source and "pip" in nb.cells[0].source
    inj = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "remove-cell" in inj.metadata["tags"] and 'profile = "smoke"' in inj.source
    box = next(c for c in nb.cells if "rerun-box" in c.metadata.get("tags", []))
    assert "mu book --chapter appB_pra --profile smoke" in box.source
    assert "`methods`" in box.source and "papermill appB_pra.ipynb" in box.source
    assert [p for p in page_problems(path) if "injected" in p or "box" in p] == []


def test_method_labels_are_written_one_way():
    forms = ["spotter (λ2=1)", "Spotter (lambda2=1)", "spotter (l2=1.0)", "Spotter (λ2 = 1)"]
    assert {method_label(f) for f in forms} == {"Spotter (λ2 = 1)"}
    assert method_label("boundary_shrink") == "Boundary Shrink"
    assert (
        method_label("salun + spotter")
        == method_label("salun", base="salun")
        == ("SalUn + Spotter")
    )


def test_our_data_is_not_called_cifar():
    df = pd.DataFrame({"method": ["delete", "delete"], "dataset": ["CIFAR-10", "CIFAR-100"]})
    out = relabel_frame(df, "cpu")
    assert list(out["dataset"]) == ["Fashion-MNIST", "digits (8×8)"]
    assert list(out[STANDS_IN]) == ["CIFAR-10", "CIFAR-100"]
    assert list(out["method"]) == ["DELETE", "DELETE"]
    assert list(relabel_frame(df, "paper")["dataset"]) == ["CIFAR-10", "CIFAR-100"]


def test_one_seed_shows_no_interval_and_several_show_n_and_a_95_interval():
    one = mean_std(pd.DataFrame({"label": ["a"], "seed": [0], "acc": [90.0]}))
    assert "n" not in one.columns and one.acc[0] == "90.00"
    three = mean_std(pd.DataFrame({"label": ["a"] * 3, "seed": [0, 1, 2], "acc": [1.0, 2.0, 3.0]}))
    # t(0.975, 2) * 1 / sqrt(3) = 2.48
    assert three.n[0] == 3 and three.acc[0] == "2.00 ± 2.48"


def test_counts_print_as_integers():
    html = style_table(pd.DataFrame({"N": [1.0, 10.0], "acc": [1.234, 5.0]})).to_html()
    assert ">10<" in html and "10.00" not in html and "1.23" in html


# What must not appear in the built HTML: leaks onto the page, and scripts fetched from a CDN.
HTML_LEAKS = (
    "Warning",
    "PosixPath",
    "Traceback",
    "# Parameters",
    "cdn.jsdelivr.net/npm/mathjax",
    "require.min.js",
)


def build_html(notebook: Path, tmp: Path) -> Path:
    """``jupyter-book build`` of one executed chapter with the book's _config.yml (the cheap way
    to check the rendered page: about a minute instead of the whole smoke book)."""
    import shutil
    import subprocess
    import sys

    import yaml

    from mu_lib.book_pages import install_mathjax

    root = tmp / "book"
    (root / "book" / "generated").mkdir(parents=True)
    shutil.copy(notebook, root / "book" / "generated" / notebook.name)
    shutil.copy(ROOT / "book" / "references.bib", root / "book" / "references.bib")
    (root / "book" / "intro.md").write_text("# Intro\n")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    (root / "_config.yml").write_text(yaml.safe_dump(config))
    toc = {
        "format": "jb-book",
        "root": "book/intro",
        "chapters": [{"file": f"book/generated/{notebook.stem}"}],
    }
    (root / "_toc.yml").write_text(yaml.safe_dump(toc))
    install_mathjax(root)
    jb = Path(sys.executable).parent / "jupyter-book"
    assert not (root / "_static").exists()
    done = subprocess.run([str(jb), "build", str(root)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root / "_build" / "html" / "book" / "generated" / f"{notebook.stem}.html"


def html_problems(html: Path) -> list[str]:
    import re

    text = html.read_text()
    body = text[text.find("<main") :] if "<main" in text else text
    body = re.sub(r"<script.*?</script>", "", body, flags=re.S)  # the theme's own code
    found = [leak for leak in HTML_LEAKS[:4] if leak in body]
    return found + [url for url in HTML_LEAKS[4:] if url in text]


@pytest.mark.slow
def test_a_smoke_chapter_page_is_clean_and_its_results_say_what_made_them(tmp_path, monkeypatch):
    results = tmp_path / "results"
    monkeypatch.setenv("MU_RESULTS_DIR", str(results))
    execute_chapter(ROOT, "s3_1_over_unlearning", "smoke", {"seed": 0}, out_dir=tmp_path)
    assert page_problems(tmp_path / "s3_1_over_unlearning.ipynb") == []
    html = build_html(tmp_path / "s3_1_over_unlearning.ipynb", tmp_path)
    assert html_problems(html) == []
    assert "Re-run this chapter" in html.read_text()
    assert list(results.glob("*.csv")) and result_problems(results) == []
    prov = json.loads((results / "s3_1_ou.json").read_text())["provenance"]
    assert prov["dataset"] == "digits (8×8)" and prov["profile"] == "smoke"
    assert os.environ["MU_RESULTS_DIR"] == str(results)


def test_the_autograder_installs_torch_and_this_package():
    import sys

    sys.path.insert(0, str(ROOT))  # `assignments` lives at the repository root
    from assignments import tools

    lines = [ln.strip() for ln in tools.REQUIREMENTS.read_text().splitlines()]
    reqs = [ln for ln in lines if ln and not ln.startswith(("#", "-"))]
    assert any(r.startswith("torch") and not r.startswith("torchvision") for r in reqs)
    assert any(r.startswith("unlearning-blindspots") for r in reqs)
    for name in tools.assignments():
        config = nbformat.read(str(tools.master_path(name)), 4).cells[0].source
        assert "requirements: ../requirements.txt" in config, name
        assert "export_cell:\n  pdf: false" in config, name  # students can export for Gradescope


def test_the_pages_workflow_keeps_its_cache_and_failures_and_never_cancels_main():
    import yaml

    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    build = wf["jobs"]["build"]["steps"]
    restore = next(s for s in build if s.get("uses", "").startswith("actions/cache/restore"))
    assert "mu-cache-${{ runner.os }}-" in restore["with"]["restore-keys"]  # newest as fallback
    save = next(s for s in build if s.get("uses", "").startswith("actions/cache/save"))
    assert save["if"].startswith("always()")  # saved after a failure too
    upload = [s for s in build if s.get("if") == "failure()"]
    assert upload and "book/generated/*.ipynb" in upload[0]["with"]["path"]
    assert "refs/heads/main" in str(wf["concurrency"]["cancel-in-progress"])
    publish = wf["jobs"]["publish-notebooks"]["steps"][-1]["run"]
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert f"git push -f origin {config['repository']['branch']}" in publish
    assert config["launch_buttons"]["binderhub_url"] and config["launch_buttons"]["colab_url"]


def test_math_and_scripts_are_served_locally(tmp_path):
    import yaml

    from mu_lib.book_pages import install_mathjax

    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert not config["mathjax_path"].startswith("http")
    assert config["nb_ipywidgets_js"] == {}  # no require.js from a CDN
    assert (
        "sphinx_exercise"
        in yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["extra_extensions"]
    )
    # the file mathjax_path names is what install_mathjax puts in a static path, not in _static/
    dest = install_mathjax(tmp_path)
    static = [p for p in config["html_static_path"] if tmp_path / p in dest.parents]
    assert static and (dest.parent / config["mathjax_path"]).exists()
    assert not (ROOT / "_static").exists()


def test_ours_paper_and_difference_share_one_grouped_header():
    from mu_lib.report import beside_paper

    ours = pd.DataFrame({"method": ["delete"], "acc_f": [1.0]})
    paper = pd.DataFrame({"method": ["delete"], "acc_f": [0.5]})
    html = style_table(beside_paper(ours, paper, "method", ["acc_f"])).to_html()
    assert 'colspan="3">acc_f<' in html and ">ours<" in html and ">Δ<" in html
    assert "acc_f (ours)" not in html


def test_long_tables_are_sortable_offline_and_keep_a_static_copy():
    import pandas as pd

    from mu_lib.report import interactive_table

    html = interactive_table(pd.DataFrame({"metric": ["acc_f", "ou"], "ours": [1.5, 0.02]})).data
    assert "_fallback" in html and "<td" in html and "1.5" in html  # static copy of the rows
    assert "unpkg" not in html and "cdn." not in html  # the DataTables bundle is in the page

"""What the build adds to each executed chapter so that it can be read, re-run and launched:
a "re-run this chapter" box generated from the chapter's ``parameters`` cell (so it never goes
stale), papermill's injected-parameters cell hidden from the page (kept in the downloadable
notebook), and a first cell that installs the package where it is missing (Colab, Binder).

Also the checks ``mu book -p`` runs before executing anything: every parameter must be one the
chapter's ``parameters`` cell defines.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

from . import MuError

REPO_URL = "https://github.com/unlearning-blindspots/unlearning-blindspots"
REMOVE = "remove-cell"  # myst-nb drops the cell from the page; the .ipynb keeps it

# Meanings of the parameters most chapters share, where the cell has no comment for them.
COMMON_MEANINGS = {
    "profile": "smoke (seconds, digits) | cpu (Fashion-MNIST, minutes) | paper (CIFAR, GPU)",
    "seed": "the seed of the split, the models and the attacker's shots",
    "seeds": "the seeds to run",
    "forget_classes": "the classes to forget",
    "methods": "unlearning methods (`mu methods` lists them)",
    "method": "the unlearning method (`mu methods` lists them)",
    "device": "auto | cpu | cuda[:N]",
    "alphas": "PRA's alpha grid (the strongest within the 1-point Acc_r budget is kept)",
    "shots": "attacker's labelled forget examples per class",
    "pra_form": "prototype form: cos (paper) or l2",
    "n_trials": "deleted points tried",
    "lambda1s": "Spotter's lambda1 values (Table 3)",
    "lambda2s": "Spotter's lambda2 values (Table 3)",
    "relearn_epochs": "fine-tuning epochs of the relearning attacker",
    "relearn_lrs": "fine-tuning learning rates the relearning attacker may pick",
    "umap_per_class": "training images per class in the UMAP",
    "fractions": "share of the classes forgotten",
}


@dataclass(frozen=True)
class Parameter:
    name: str
    default: str  # the Python source of the default
    meaning: str  # the comment after it ("" when none)

    @property
    def is_scalar(self) -> bool:
        """A default papermill's ``-p`` can pass (numbers, strings, booleans, None)."""
        try:
            value = ast.literal_eval(self.default)
        except (ValueError, SyntaxError):
            return False
        return value is None or isinstance(value, (bool, int, float, str))

    def cli_args(self, papermill: bool = False) -> str:
        """``-p name value`` for scalars; for lists, tuples and dicts ``mu book``'s
        ``-y name 'yaml'`` or papermill's ``-y 'name: yaml'`` (a YAML mapping)."""
        value = ast.literal_eval(self.default)
        if self.is_scalar:
            shown = str(value) if not isinstance(value, str) else value
            return f"-p {self.name} {_quote(shown)}"
        if isinstance(value, tuple):
            value = list(value)
        if papermill:
            return f"-y {_quote(self.name + ': ' + json.dumps(value))}"
        return f"-y {self.name} {_quote(json.dumps(value))}"


def _quote(text: str) -> str:
    return text if re.fullmatch(r"[A-Za-z0-9_.,:+-]+", text) else "'" + text.replace("'", "") + "'"


def parameters_cell(source_md: Path) -> str:
    """The source of the ``parameters`` cell of a jupytext MyST chapter."""
    text = Path(source_md).read_text()
    m = re.search(
        r"```\{code-cell\}[^\n]*\n:tags: \[[^\]]*parameters[^\]]*\]\n(.*?)```", text, re.S
    )
    if not m:
        raise MuError(f"{source_md} has no code cell tagged `parameters`")
    return m.group(1)


def parameters(source_md: Path) -> list[Parameter]:
    """Name, default and meaning (the trailing comment) of every chapter parameter."""
    src = parameters_cell(source_md)
    lines = src.splitlines()
    out = []
    for node in ast.parse(src).body:
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
            continue
        default = ast.get_source_segment(src, node.value) or ""
        default = " ".join(default.split()).replace("[ ", "[").replace(", ]", "]")
        last = lines[node.end_lineno - 1]
        comment = last.split("#", 1)[1].strip() if "#" in last[node.end_col_offset :] else ""
        name = node.targets[0].id
        out.append(Parameter(name, default, comment or COMMON_MEANINGS.get(name, "")))
    return out


def check_parameters(source_md: Path, chapter: str, names) -> None:
    """A clear error, before anything runs, for a parameter the chapter does not have."""
    known = [p.name for p in parameters(source_md)]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise MuError(
            f"chapter {chapter} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are {', '.join(known)} (see the re-run box at the top of the chapter)"
        )


def rerun_box(chapter: str, params: list[Parameter], used: dict | None = None) -> str:
    """Markdown for the re-run box: a table of the parameters and the exact commands."""
    used = used or {}
    rows = ["| parameter | default | this page | meaning |", "|---|---|---|---|"]
    for p in params:
        here = used.get(p.name, "")
        here = f"`{here}`" if here != "" else "default"
        meaning = p.meaning.replace("|", "\\|") or "–"
        rows.append(f"| `{p.name}` | `{p.default.replace('|', '/')}` | {here} | {meaning} |")
    example = [p for p in params if p.name != "profile"][:2]
    args = " ".join(p.cli_args() for p in example)
    pm_args = " ".join(p.cli_args(papermill=True) for p in example)
    profile = used.get("profile", "cpu")
    lines = [
        ":::{admonition} Re-run this chapter",
        ":class: tip dropdown",
        "",
        "Its parameters: scalars go with `-p name value`; lists with `-y name '[...]'` to "
        "`mu book`, with `-y 'name: [...]'` (a YAML mapping) to papermill.",
        "",
        *rows,
        "",
        'From a clone of the repository (`pip install -e ".[book]"`), the command line re-executes '
        "this chapter into `book/generated/` (add `--no-build` to skip the HTML):",
        "",
        "```bash",
        f"mu book --chapter {chapter} --profile {profile} {args}".rstrip(),
        "```",
        "",
        "or with papermill directly:",
        "",
        "```bash",
        f"jupytext --to ipynb -o {chapter}.ipynb notebooks/{chapter}.md",
        f"papermill {chapter}.ipynb {chapter}.out.ipynb -p profile {profile} {pm_args}".rstrip(),
        "```",
        "",
        "The downloaded notebook (download button, top right) runs on Colab or Binder as it is: "
        "its first cell installs the package where it is missing and then uses the `smoke` profile "
        "(seconds on a CPU); `cpu` takes minutes, `paper` wants a GPU.",
        ":::",
    ]
    return "\n".join(lines)


def install_source(commit: str | None = None) -> str:
    ref = f"@{commit}" if commit and re.fullmatch(r"[0-9a-f]{7,40}", commit) else ""
    return "\n".join(
        [
            "# Colab / Binder: install the package when it is missing (the code that made this page).",
            "# On a machine without a GPU keep the smoke profile (seconds); 'paper' wants a GPU.",
            "# CPU-only torch first, to avoid the 5.5 GB CUDA build: uncomment the next line.",
            "# %pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu",
            "import importlib.util, subprocess, sys",
            'MU_FRESH_INSTALL = importlib.util.find_spec("mu_lib") is None',
            "if MU_FRESH_INSTALL:",
            "    subprocess.check_call([sys.executable, '-m', 'pip', 'install', '-q',",
            f"                           'unlearning-blindspots[book] @ git+{REPO_URL}{ref}'])",
        ]
    )


FRESH_PROFILE = (
    "# where the first cell had to install the package, run the seconds-long smoke profile\n"
    'if globals().get("MU_FRESH_INSTALL"):\n'
    '    profile = "smoke"'
)


def finish_notebook(path: Path, chapter: str, source_md: Path, used: dict | None = None) -> None:
    """Post-process an executed chapter in place: hide the injected-parameters cell, add the
    re-run box under the title and the install cells (hidden on the page)."""
    import nbformat

    from .report import code_version

    nb = nbformat.read(str(path), as_version=4)
    cells = nb.cells
    if any("rerun-box" in c.metadata.get("tags", []) for c in cells):
        return  # already finished
    for c in cells:
        tags = c.metadata.get("tags", [])
        if "injected-parameters" in tags and REMOVE not in tags:
            c.metadata["tags"] = [*tags, REMOVE]
    after_params = next((i + 1 for i, c in reversed(list(enumerate(cells))) if _is_params(c)), None)
    if after_params is not None:
        cells.insert(after_params, _code(FRESH_PROFILE, [REMOVE, "launch-only"]))
    box = nbformat.v4.new_markdown_cell(rerun_box(chapter, parameters(source_md), used))
    box.metadata["tags"] = ["rerun-box"]
    title = next((i for i, c in enumerate(cells) if c.cell_type == "markdown"), -1)
    if title >= 0:
        _split_after_heading(
            cells, title
        )  # the box goes right under the title, not after the intro
    cells.insert(title + 1, box)
    commit = code_version().removesuffix("-dirty")
    cells.insert(0, _code(install_source(commit), [REMOVE, "launch-only"]))
    nbformat.write(nb, str(path))


def _split_after_heading(cells, i: int) -> None:
    """Split markdown cell ``i`` after its leading ``# title`` line (the rest becomes a new cell)."""
    import nbformat

    lines = cells[i].source.split("\n")
    if not lines[0].startswith("# ") or not "\n".join(lines[1:]).strip():
        return
    cells[i].source = lines[0]
    rest = nbformat.v4.new_markdown_cell("\n".join(lines[1:]).strip("\n"))
    cells.insert(i + 1, rest)


def _is_params(cell) -> bool:
    tags = cell.metadata.get("tags", [])
    return cell.cell_type == "code" and ("parameters" in tags or "injected-parameters" in tags)


def _code(source: str, tags: list[str]):
    import nbformat

    c = nbformat.v4.new_code_cell(source)
    c.metadata["tags"] = tags
    return c


# What must not reach a rendered page (the test of every executed chapter checks these).
PAGE_LEAKS = ("Warning", "PosixPath", "Traceback")


def page_problems(path: Path) -> list[str]:
    """What would show on the rendered page of an executed chapter and should not: warnings,
    path reprs and tracebacks in visible outputs, a visible injected-parameters cell, a missing
    re-run box."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    problems = []
    if not any("rerun-box" in c.metadata.get("tags", []) for c in nb.cells):
        problems.append("no re-run box")
    for i, c in enumerate(nb.cells):
        tags = c.metadata.get("tags", [])
        if "injected-parameters" in tags and REMOVE not in tags:
            problems.append(f"cell {i}: papermill's injected parameters are shown")
        if c.cell_type != "code" or REMOVE in tags or "remove-output" in tags:
            continue
        for out in c.get("outputs", []):
            texts = []
            if out.get("output_type") == "stream":
                texts.append(out.get("text", ""))
            elif out.get("output_type") == "error":
                texts.append("Traceback " + out.get("ename", ""))
            else:
                texts.append(out.get("data", {}).get("text/plain", ""))
            for text in texts:
                text = "".join(text) if isinstance(text, list) else text
                for leak in PAGE_LEAKS:
                    if leak in text:
                        line = next(ln for ln in text.splitlines() if leak in ln)
                        problems.append(f"cell {i}: {leak}: {line.strip()[:120]}")
    return problems


def install_mathjax(root: Path) -> Path:
    """Copy MathJax 3 (the django-static-mathjax wheel's es5 build, a ``book`` dependency) to
    ``<root>/build/mathjax_static/mathjax``, a static path of _config.yml, so that the built
    ``_static/mathjax/tex-chtml.js`` serves math offline.  Not under ``_static/``: jupyter-book
    would add each of MathJax's hundreds of .js files to every page."""
    import shutil

    try:
        import mathjax
    except ImportError as err:
        raise MuError(
            "math needs MathJax served locally: pip install 'django-static-mathjax>=3.2' "
            '(part of the book extra: pip install -e ".[book]")'
        ) from err
    src = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    dest = Path(root) / "build" / "mathjax_static" / "mathjax"
    if not (dest / "tex-chtml.js").exists():
        shutil.copytree(src, dest, dirs_exist_ok=True)
    (dest.parent / "book.css").write_text(BOOK_CSS)
    return dest


# Wide result tables (ours / paper / Δ per metric) use the page's width and scroll sideways
# instead of being cut off; served beside MathJax (see install_mathjax).
BOOK_CSS = """\
.bd-page-width { max-width: 100%; }
.bd-main .bd-content .bd-article-container { max-width: 90em; }
.cell_output table { font-size: 0.82em; }
.cell_output .output { overflow-x: auto; }
.cell_output table th, .cell_output table td { padding: 0.15em 0.45em; white-space: nowrap; }
"""


def result_problems(results: Path) -> list[str]:
    """Saved result files that do not name their real dataset or their provenance (a JSON
    ``provenance`` block; no column but ``stands in for`` calling our data CIFAR)."""
    import pandas as pd

    from .labels import PAPER_DATASETS, STANDS_IN

    problems = []
    for csv in sorted(results.glob("*.csv")):
        meta_path = csv.with_suffix(".json")
        if not meta_path.exists():
            problems.append(f"{csv.name}: no JSON metadata")
            continue
        prov = json.loads(meta_path.read_text()).get("provenance", {})
        for key in ("profile", "datasets", "stand_ins", "mu_lib", "commit"):
            if not prov.get(key):
                problems.append(f"{csv.name}: provenance lacks {key}")
        if prov.get("profile") == "paper":
            continue
        df = pd.read_csv(csv)
        for c in df.columns:
            if c == STANDS_IN or "paper" in str(c):
                continue
            if df[c].astype(str).isin(PAPER_DATASETS).any():
                problems.append(f"{csv.name}: column {c!r} calls our data {PAPER_DATASETS}")
    return problems

"""The paper's published numbers (Tables 1-10), shipped as package data for the reference columns.

Columns: accuracies in percent, ``ou`` is OU@eps (PGD, JS); empty cells are dashes in the paper.
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources

from . import MuError

TABLES = {
    1: "table1_main.csv",
    2: "table2_plug_and_play.csv",
    3: "table3_lambda_ablation.csv",
    4: "table4_gaussian_ou.csv",
    5: "table5_alpha_sweep.csv",
    6: "table6_larger_datasets.csv",
    7: "table7_transformers.csv",
    8: "table8_repeated_pra.csv",
    9: "table9_sequential.csv",
    10: "table10_forget_ratio.csv",
}

# Our registry name -> the paper's row label.
PAPER_NAMES = {
    "original": "Original",
    "retrain": "Retrain",
    "random_label": "Random Label",
    "neggrad": "NegGrad",
    "boundary_shrink": "Boundary Shrink",
    "boundary_expand": "Boundary Expand",
    "salun": "SalUn",
    "l2ul": "Learn to Unlearn",
    "delete": "DELETE",
    "fisher": "Fisher",
    "unsc": "UNSC",
    "spotter": "Spotter",
}


def _convert(v: str):
    if v == "":
        return None
    try:
        return float(v)
    except ValueError:
        return v


@cache
def _rows(number: int) -> tuple[dict, ...]:
    if number not in TABLES:
        raise MuError(f"the paper has Tables 1-10; got {number}")
    text = resources.files("mu_lib").joinpath("paper_data", TABLES[number]).read_text()
    reader = csv.DictReader(text.splitlines())
    return tuple({k: _convert(v) for k, v in row.items()} for row in reader)


def table_rows(number: int) -> list[dict]:
    """Rows of paper table ``number`` as dicts (numbers as floats, dashes as None)."""
    return [dict(r) for r in _rows(number)]


def table(number: int):
    """Paper table ``number`` as a pandas DataFrame (needs pandas)."""
    import pandas as pd

    return pd.DataFrame(table_rows(number))


def paper_name(method: str, base: str | None = None, lambda2: float | None = None) -> str:
    """The paper's label for one of our configurations (e.g. ``Spotter (lambda2=1)``)."""
    if base is not None:
        return f"{PAPER_NAMES.get(base, base)} + Spotter"
    name = PAPER_NAMES.get(method, method)
    if method == "spotter" and lambda2 is not None:
        return f"Spotter (lambda2={lambda2:g})"
    return name

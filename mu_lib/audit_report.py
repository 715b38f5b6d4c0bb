"""What ``mu audit`` writes: its result, the terminal line, and the report folder (``audit.json``,
``report.md`` and two figures), written atomically into a temporary sibling that is renamed."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import MuError

REPORT_MARKER = "audit.json"


@dataclass
class AuditResult:
    record: dict[str, Any]
    features: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return self.record["summary"]


def check_report_dir(report: str | Path | None) -> None:
    """A report folder may be new, empty or an earlier audit's (which it replaces)."""
    if report is None:
        return
    out = Path(report)
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / REPORT_MARKER).exists())
    ):
        raise MuError(
            f"--report {out} exists and is not an earlier audit report; choose a new folder"
        )


def _first(items: list[dict], attack: str) -> dict | None:
    return next((r for r in items if r["attack"] == attack), None)


def summary_line(rec: dict) -> str:
    """The one line printed on the terminal."""
    o, u = rec["models"]["original"], rec["models"]["unlearned"]
    parts = [
        f"Acc_f {u['acc_f']:.1f} (orig {o['acc_f']:.1f})",
        f"Acc_rt {u['acc_rt']:.1f} (orig {o['acc_rt']:.1f})",
        f"OU@eps {rec['ou']['pgd']:.4f}",
    ]
    pra = rec["pra"]["unlearned"]
    if pra:
        k = min(pra, key=int)
        parts.append(f"PRA@{k} {pra[k]['chosen_proto_acc_f']:.1f} (alpha {pra[k]['alpha']:g})")
    fa = rec["feature_attacks"]["unlearned"]
    for attack in ("knn", "probe"):
        r = _first(fa, attack)
        if r:
            parts.append(f"{'k-NN' if attack == 'knn' else 'probe'}@{r['k']} {r['acc_f']:.1f}")
    if "relearn" in rec:
        parts.append(f"relearn {rec['relearn']['chosen_acc_f']:.1f}")
    if "mra" in rec:
        parts.append(f"MRA {rec['mra']['recall']:.1f}")
    return "forget accuracy: " + " | ".join(parts)


def write_report(res: AuditResult, report: str | Path) -> list[str]:
    """Write ``audit.json``, ``report.md`` and the figures into ``report`` atomically; returns the
    file names written."""
    check_report_dir(report)
    out = Path(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        figures = _figures(res, tmp)
        (tmp / "report.md").write_text(markdown_report(res.record, figures))
        (tmp / REPORT_MARKER).write_text(json.dumps(res.record, indent=2, default=float))
        names = sorted(p.name for p in tmp.iterdir())
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return names


def _figures(res: AuditResult, folder: Path) -> list[str]:
    """The alpha sweep and a 2-D PCA map of the features; none without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    rec = res.record
    out = []
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, style in (("original", "--"), ("unlearned", "-")):
        sweeps = rec["pra"][name]
        if not sweeps:
            continue
        k = min(sweeps, key=int)
        r = sweeps[k]
        ax.plot(r["alphas"], r["proto_acc_f"], style, color="C3", label=f"Proto-Acc_f ({name})")
        ax.plot(r["alphas"], r["acc_r_star"], style, color="C0", label=f"Acc*_r ({name})")
    ax.set(xlabel="alpha", ylabel="accuracy (%)", title="PRA alpha sweep")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "alpha_sweep.png", dpi=110)
    plt.close(fig)
    out.append("alpha_sweep.png")
    if res.features:
        from sklearn.decomposition import PCA

        fc = set(rec["data"]["forget_classes"])
        fig, axes = plt.subplots(1, len(res.features), figsize=(4 * len(res.features), 3.6))
        for ax, (name, (emb, y)) in zip(
            list(getattr(axes, "flat", [axes])), res.features.items(), strict=True
        ):
            keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:2000]
            e, yy = emb[keep].numpy(), y[keep]
            xy = PCA(2, random_state=0).fit_transform(e) if e.shape[1] >= 2 else e.repeat(2, 1)
            f = torch.tensor([int(c) in fc for c in yy])
            ax.scatter(xy[~f, 0], xy[~f, 1], s=3, c=yy[~f].numpy(), cmap="tab10", alpha=0.4)
            ax.scatter(xy[f, 0], xy[f, 1], s=6, c="k", label="forget classes")
            ax.set(title=f"{name}: penultimate features (PCA)", xticks=[], yticks=[])
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "features_pca.png", dpi=110)
        plt.close(fig)
        out.append("features_pca.png")
    return out


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    fmt = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in rows:
        fmt.append(
            "| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r) + " |"
        )
    return "\n".join(fmt)


def markdown_report(rec: dict, figures: Sequence[str] = ()) -> str:
    """The human-readable report: tables of the record, then the figures."""
    meta, o, u = rec["meta"], rec["models"]["original"], rec["models"]["unlearned"]
    lines = [
        "# Unlearning audit",
        "",
        f"Model `{meta.get('arch', 'nn.Module')}`, data `{meta.get('data', '-')}`, forget classes "
        f"{rec['data']['forget_classes']}, device {meta['device']}, mu_lib {meta['version']}.",
        "",
        f"**Summary:** {rec['summary']}",
        "",
        "## Accuracy (%)",
        "",
        _md_table(
            ["", "original", "unlearned"],
            [[k, o[k], u[k]] for k in ("acc_f", "acc_r", "acc_ft", "acc_rt")],
        ),
        "",
        f"OU@eps against the original (Jensen-Shannon, 0 = retained classes untouched): PGD "
        f"{rec['ou']['pgd']:.4f}, Gaussian {rec['ou']['gauss']:.4f}.",
        "",
        "## Relearning attacks (forget accuracy after the attack, %)",
        "",
    ]
    rows = []
    for name in ("original", "unlearned"):
        for k, r in rec["pra"][name].items():
            rows.append(
                [name, "PRA (stealthy alpha)", k, r["chosen_proto_acc_f"], r["chosen_acc_r_star"]]
            )
        for r in rec["feature_attacks"][name]:
            label = "k-NN recovery" if r["attack"] == "knn" else "linear probe"
            rows.append([name, label, r["k"], r["acc_f"], r["acc_r"]])
    if "relearn" in rec:
        r = rec["relearn"]
        rows.append(
            [
                "unlearned",
                f"fine-tuning (lr {r['lr']:g})",
                r["k"],
                r["chosen_acc_f"],
                r["chosen_acc_r"],
            ]
        )
    lines.append(_md_table(["model", "attack", "k", "forget acc", "retained acc"], rows))
    if "mra" in rec:
        lines += [
            "",
            f"MRA label recall on D_f: {rec['mra']['recall']:.2f}% (the unlearned "
            f"model's own accuracy there: {rec['mra']['own_acc_f']:.2f}%).",
        ]
    for f in figures:
        lines += ["", f"![{f}]({f})"]
    lines += ["", "All numbers: `audit.json`."]
    return "\n".join(lines) + "\n"

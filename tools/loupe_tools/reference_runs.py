"""The reference-scoring measurements of the docs, in one command: runs ``loupe eval`` on Magnetic-Tile in each
scoring mode and fusion rule and prints the Markdown tables of ``docs/reference.md`` and the README.

    python -m loupe_tools.reference_runs --loupe target/release/loupe \
        --data ../shared/data/mt/magnetic_tile --out target/eval/reference [--only modes,fusion,coreset,selection]

Splits (by capture run, as the data's README asks): the *test* split is runs exp5 and exp6 with references from
the good images of exp1-exp4; the *selection* split, on which settings were chosen, is runs exp3 and exp4 with
references from the good images of exp1 and exp2 (all training runs of the default model). Every run is one
``loupe eval`` whose ``report.json`` lands in ``OUT/<name>/``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

TYPES = ["blowhole", "break", "crack", "fray", "uneven"]


@dataclass
class Run:
    """One ``loupe eval`` invocation."""

    name: str
    include: str
    extra: list[str] = field(default_factory=list)


def test_runs(data: Path) -> list[Run]:
    """The modes on the test split: text only, 16 golden samples (plain and with flips), mutual scoring."""
    refs = ["--references", str(data / "good" / "exp[1-4]*"), "--shots", "16"]
    return [
        Run("text", "exp5*,exp6*"),
        Run("golden16", "exp5*,exp6*", refs),
        Run("golden16-flips", "exp5*,exp6*", refs + ["--augment", "flips"]),
        Run("mutual", "exp5*,exp6*", ["--mutual"]),
    ]


def fusion_runs(data: Path, split: str) -> list[Run]:
    """Every fusion rule, golden (16 shots) and mutual, on ``split`` (``test`` or ``selection``)."""
    include, ref_glob = ("exp5*,exp6*", "exp[1-4]*") if split == "test" else ("exp3*,exp4*", "exp[12]*")
    refs = ["--references", str(data / "good" / ref_glob), "--shots", "16"]
    out = []
    for rule in ["mean", "harmonic", "layer_sum", "reference"]:
        out.append(Run(f"{split}-golden-{rule}", include, refs + ["--fusion", rule]))
        out.append(Run(f"{split}-mutual-{rule}", include, ["--mutual", "--fusion", rule]))
    return out


def weight_runs(data: Path) -> list[Run]:
    """Text weights of the `mean` rule on the selection split."""
    refs = ["--references", str(data / "good" / "exp[12]*"), "--shots", "16"]
    return [Run(f"selection-golden-w{w}", "exp3*,exp4*", refs + ["--text-weight", w]) for w in ["0.25", "0.5", "0.75"]]


def coreset_runs(data: Path) -> list[Run]:
    """Coreset fractions of 16 golden samples on the test split."""
    refs = ["--references", str(data / "good" / "exp[1-4]*"), "--shots", "16"]
    return [Run(f"golden16-coreset{f}", "exp5*,exp6*", refs + ["--coreset", f]) for f in ["0.25", "0.1"]]


def run(loupe: Path, data: Path, out: Path, r: Run) -> dict:
    """Runs ``loupe eval`` (unless its report exists) and returns the report."""
    folder = out / r.name
    report = folder / "report.json"
    if not report.exists():
        cmd = [str(loupe), "eval", str(data), "--include", r.include, "--out", str(folder), *r.extra]
        if r.name != "text":
            cmd.append("--no-baseline")  # the text run reports it; it does not depend on the mode
        subprocess.run(cmd, check=True)
    loaded: dict = json.loads(report.read_text())
    return loaded


def cells(metrics: dict, per_type: dict) -> list[str]:
    """Image AUROC over all images, then pixel AUROC per type."""
    def f(v: Optional[float]) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    return [f(metrics.get("image_auroc"))] + [f(per_type.get(t, {}).get("pixel_auroc")) for t in TYPES]


def mode_table(reports: dict[str, dict]) -> str:
    """Per mode beside the text-only result and the baseline, as the README shows it."""
    header = "| scoring (MT test split) | image AUROC | " + " | ".join(f"pixel AUROC {t}" for t in TYPES) + " |"
    lines = [header, "|" + " --- |" * (2 + len(TYPES))]
    text = reports["text"]
    lines.append("| text only (DAPO, embedded default model) | " + " | ".join(cells(text["overall"], text["per_type"])) + " |")
    base = text.get("baseline")
    if base:
        lines.append("| training-free baseline (local contrast) | " + " | ".join(cells(base["overall"], base["per_type"])) + " |")
    names = {"golden16": "16 golden samples", "golden16-flips": "16 golden samples + flips", "mutual": "mutual (window 48)"}
    for key, label in names.items():
        if key in reports:
            r = reports[key]
            lines.append(f"| {label} | " + " | ".join(cells(r["overall"], r["per_type"])) + " |")
    return "\n".join(lines)


def comparison_table(reports: dict[str, dict], split: str) -> str:
    """Fusion rules side by side for one split."""
    header = f"| fusion ({split} split) | image AUROC | " + " | ".join(t for t in TYPES) + " |"
    lines = [header, "|" + " --- |" * (2 + len(TYPES))]
    for name, r in reports.items():
        if name.startswith(f"{split}-"):
            lines.append(f"| {name[len(split) + 1:]} | " + " | ".join(cells(r["overall"], r["per_type"])) + " |")
    return "\n".join(lines)


def _parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loupe", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, help="the Magnetic-Tile folder (good/, <type>/, ground_truth/)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--only", default="modes,fusion,selection,coreset")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = _parse_args(argv)
    parts = set(args.only.split(","))
    plan: list[Run] = []
    if "modes" in parts:
        plan += test_runs(args.data)
    if "selection" in parts:
        plan += fusion_runs(args.data, "selection") + weight_runs(args.data)
    if "fusion" in parts:
        plan += fusion_runs(args.data, "test")
    if "coreset" in parts:
        plan += coreset_runs(args.data)
    reports = {r.name: run(args.loupe, args.data, args.out, r) for r in plan}
    if "modes" in parts:
        print(mode_table(reports) + "\n")
    for split in ["selection", "test"]:
        if any(n.startswith(f"{split}-") for n in reports):
            print(comparison_table(reports, split) + "\n")
    for name, r in reports.items():
        if "coreset" in name:
            print(f"{name}: " + ", ".join(cells(r["overall"], r["per_type"])))


if __name__ == "__main__":
    main()

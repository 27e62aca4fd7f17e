"""Write measured results and the chosen registration defaults into a model folder's card.

After ``bench_intersubject.py`` has measured a model (``--variant`` with its features), this copies the mean
results of the named runs into the card's ``benchmark`` entry (per run: split, MR contrast, command, and per
case the mean Dice, folding and time of every method) and sets ``registration_defaults``, the features
``register(..., features="auto")`` runs when the caller names those modalities (see
:func:`itk_suits.features.resolved_features`). The ONNX files are not touched, so their checksums hold.

Usage::

    python benchmarks/record_model_results.py itk_suits/models/suits-abdomen-2d \\
        --results validation=benchmarks/results/abdomen-2d-validation.json \\
        --default mr,ct=mind+suits-abdomen-2d --default mr,mr=mind
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # this checkout, installed or not

from itk_suits.features import read_model_card  # noqa: E402
from itk_suits.features.model import CARD_NAME, checked_modality  # noqa: E402

#: Numbers kept per method and case.
KEPT = ("dice_mean", "folding_percent", "gland_dice", "tre_mm", "median_seconds", "ratio_to_elastix")


def summary(path: Path) -> dict:
    """The means of a bench_intersubject.py JSON report, with how it was run."""
    report = json.loads(path.read_text(encoding="utf-8"))
    if not report.get("complete"):
        raise SystemExit(f"{path}: the run did not complete")
    cases = {case: {method: {key: round(value, 4) for key, value in row.items()
                             if key in KEPT and isinstance(value, (int, float))}
                    for method, row in entry["means"].items()}
             for case, entry in report["cases"].items()}
    return {"split": report["split"], "mr_contrast": report.get("mr_contrast", "t2-spir"),
            "threads": report["threads"], "command": report["command"], "variants": report["variants"],
            "pairs": {case: len(entry["pairs"]) for case, entry in report["cases"].items()}, "means": cases}


def parse_default(text: str) -> tuple[str, str]:
    """``"mr,ct=mind+suits-abdomen-2d"`` -> ``("mr,ct", "mind+suits-abdomen-2d")``, names checked."""
    key, _, features = text.partition("=")
    names = key.split(",")
    if len(names) != 2 or not features:
        raise argparse.ArgumentTypeError(f"expected FIXED,MOVING=FEATURES, got {text!r}")
    return ",".join(checked_modality(name) for name in names), features


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="model folder")
    parser.add_argument("--results", action="append", default=[], metavar="NAME=JSON",
                        help="a bench_intersubject.py report to record under NAME (repeatable)")
    parser.add_argument("--default", action="append", default=[], type=parse_default, metavar="FIXED,MOVING=FEATURES",
                        help="features register() runs by default for these modalities (repeatable)")
    arguments = parser.parse_args(argv)
    read_model_card(arguments.model)  # a valid card before it is changed
    path = arguments.model / CARD_NAME
    card = json.loads(path.read_text(encoding="utf-8"))
    for entry in arguments.results:
        name, _, report = entry.partition("=")
        card.setdefault("benchmark", {})[name] = summary(Path(report))
    if arguments.default:
        card["registration_defaults"] = dict(arguments.default)
    path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    read_model_card(arguments.model)  # still valid
    print(f"recorded {len(arguments.results)} result(s) and {len(arguments.default)} default(s) in {path}")


if __name__ == "__main__":
    main()

"""docs/methods.md's recipe table states what ``nuat train`` does per data set: it must match
``nuat.train.recipes.RECIPES`` (model, eps, epochs, batch, peak LR) for every data set."""

import re
from pathlib import Path

from nuat.train.recipes import RECIPES

DOC = Path(__file__).resolve().parents[2] / "docs" / "methods.md"


def _doc_rows() -> dict[str, tuple[str, ...]]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 7 or not cells[0].startswith("`"):
            continue
        for name in re.findall(r"`([^`]+)`", cells[0]):
            rows[name] = tuple(c.strip("`") for c in cells[1:6])
    return rows


def test_recipe_table_in_docs_matches_the_code():
    rows = _doc_rows()
    assert set(RECIPES) <= set(rows), f"data sets missing from the recipe table: {sorted(set(RECIPES) - set(rows))}"
    for name, recipe in RECIPES.items():
        expected = (recipe["model"], recipe["eps"], str(recipe["epochs"]), str(recipe["batch_size"]), f"{recipe['lr']:g}")
        assert rows[name] == expected, f"{name}: docs say {rows[name]}, code has {expected}"


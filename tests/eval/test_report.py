"""The table: worst case per image count, and AutoAttack's own flags surfaced in it."""

import pytest

from nuat.eval.registry import Settings, build_jobs, parse_attacks
from nuat.eval.report import render_markdown, summarize
from nuat.eval.state import EvalState

pytest.importorskip("pyautoattack")


def fake_state(tmp_path, jobs, flags):
    state = EvalState(tmp_path / "state.json", {})
    for job in jobs:
        record = state.job(job.key, job.params, job.outputs)
        record["flags"] = {o: flags[o][: job.n] for o in job.outputs}
        record["batches"] = 1
    return state


def test_square_beating_the_gradient_attacks_is_flagged_in_the_table(tmp_path):
    jobs = build_jobs(parse_attacks("clean,pgd-20,aa@8", 10), Settings(eps=0.1, pgd_step=0.01))
    flags = {"clean": "1111111110", "pgd-20": "1111111000",
             "aa/apgd-ce": "11111100", "aa/apgd-t": "11111100", "aa/fab-t": "11111100",
             "aa/square": "11110000", "aa": "11110000"}
    summary = summarize(jobs, fake_state(tmp_path, jobs, flags))
    rows = {r["name"]: r for r in summary["attacks"]}
    assert rows["aa"]["accuracy"] == 0.5 and [c["accuracy"] for c in rows["aa"]["components"]] == [0.75, 0.75, 0.75, 0.5]
    assert any("Square Attack has decreased the robust accuracy of 25.00%" in m for m in rows["aa"]["flags"])
    assert {w["n"]: w["robust"] for w in summary["worst_case"]} == {8: 4, 10: 7}
    result = {**summary, "checkpoint": {"name": "m", "model": "small-cnn", "path": "m.safetensors", "sha256": "ab"},
              "provenance": {"commit": "abc", "nuat_version": "0", "machine": "cpu"}, "dataset": "mnist", "n": 10,
              "eps_text": "0.1", "seed": 0, "batch_size": 10}
    md = render_markdown(result)
    aa_line = next(line for line in md.splitlines() if line.startswith("| AutoAttack (standard)"))
    assert "FLAG: Square Attack has decreased" in aa_line and "Square 50.00%" in aa_line
    assert "| **worst case** (all 2 attacks) | 8 |" in md and "the 1 attack run on all 10" in md

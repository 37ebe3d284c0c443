"""``nuat sanity`` passes an honest model and FLAGs a deliberately gradient-masked one."""

import json

from nuat.cli import main
from nuat.eval.sanity import SanityConfig, run_checks

CFG = SanityConfig(eps=0.3, n=64, batch_size=64, square_queries=200, surface_images=16, progress=False)


def test_sanity_flags_a_gradient_masked_model(masked_mnist, mnist_test):
    checks, extra = run_checks(masked_mnist, mnist_test, CFG)
    status = {c.name: c.status for c in checks}
    assert extra["accuracy"]["clean"] > 0.8  # quantisation keeps the model accurate: only gradients are gone
    assert status["white-box beats black-box"] == "FLAG"
    assert status["unbounded attack reaches ~0%"] == "FLAG"
    assert status["loss is smooth along gradient and random directions"] == "FLAG"
    smooth = next(c for c in checks if c.name.startswith("loss is smooth"))
    assert smooth.numbers["zero_gradient"] == 1.0


def test_sanity_cli_passes_an_honest_model(undefended_checkpoint, tmp_path, real_data_dir, capsys):
    out = tmp_path / "sanity"
    code = main(["sanity", str(undefended_checkpoint), "--data-dir", str(real_data_dir), "--n", "64",
                 "--batch-size", "64", "--square-queries", "200", "--surface-images", "16", "--out", str(out),
                 "--no-progress"])
    stdout = capsys.readouterr().out
    assert code == 0
    result = json.loads((out / "sanity.json").read_text())
    assert [c["status"] for c in result["checks"]] == ["PASS"] * 6, result["checks"]
    assert result["verdict"] == "PASS" and "**PASS**" in stdout
    assert (out / "loss_surface.png").stat().st_size > 10_000
    md = (out / "sanity.md").read_text()
    assert "loss_surface.png" in md and result["provenance"]["commit"] in md


def test_sanity_names_the_bad_budget(tmp_path, real_data_dir, capsys):
    """--square-queries / --surface-images below 1: one line naming that option and its value."""
    from nuat_testing import mnist_checkpoint

    ckpt = tmp_path / "ck.safetensors"
    mnist_checkpoint(ckpt)
    for flag, other in (("--square-queries", "--surface-images"), ("--surface-images", "--square-queries")):
        capsys.readouterr()
        code = main(["sanity", str(ckpt), "--data-dir", str(real_data_dir), flag, "0", "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert code == 2 and f"{flag} must be positive, got 0" in err and other not in err, err
        assert not (tmp_path / "o").exists()


def test_sanity_cli_exits_4_when_a_check_flags(undefended_checkpoint, tmp_path, real_data_dir, capsys,
                                               monkeypatch):
    # the checks themselves are tested in test_sanity_rules.py; here: the verdict reaches the exit code
    from nuat.eval import sanity

    monkeypatch.setattr(sanity, "run_sanity", lambda target, *a, **k: {"verdict": "FLAG", "plot": None})
    monkeypatch.setattr(sanity, "render_sanity", lambda result: f"verdict {result['verdict']}")
    code = main(["sanity", str(undefended_checkpoint), "--data-dir", str(real_data_dir), "--n", "8",
                 "--out", str(tmp_path / "s"), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 4 and "verdict FLAG" in out and f"FLAG ({undefended_checkpoint.stem})" in err, err
    monkeypatch.setattr(sanity, "run_sanity", lambda target, *a, **k: {"verdict": "PASS", "plot": None})
    assert main(["sanity", str(undefended_checkpoint), "--data-dir", str(real_data_dir), "--n", "8",
                 "--out", str(tmp_path / "p"), "--no-progress"]) == 0

"""``nuat eval`` end to end: outputs, worst case, loading, threat-model check, resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nuat.cli import main
from nuat.eval import registry
from nuat.errors import UsageError
from nuat.eval.registry import JobOutput, Settings, build_jobs, parse_attacks


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def eval_args(target, out, real_data_dir, *extra, n="64", attacks="clean,fgsm,pgd-5,pgd-10,gama-pgd-10"):
    return ["eval", str(target), "--data-dir", str(real_data_dir), "--n", n, "--batch-size", "32",
            "--attacks", attacks, "--out", str(out), "--no-progress", *extra]


def numbers(result):
    """The parts of eval.json that must not depend on timing or on the process."""
    return {"attacks": [{k: v for k, v in r.items() if k not in ("seconds", "components")} for r in result["attacks"]],
            "components": [[{k: v for k, v in c.items() if k != "seconds"} for c in r["components"]]
                           for r in result["attacks"]],
            "worst_case": result["worst_case"], "eps": result["eps"], "n": result["n"],
            "sha256": result["checkpoint"]["sha256"]}


def test_unknown_attack_is_a_one_line_usage_error(undefended_checkpoint, tmp_path, real_data_dir, capsys):
    code, _, err = run_cli(eval_args(undefended_checkpoint, tmp_path / "o", real_data_dir, attacks="clean,pgd-2O"), capsys)
    assert code == 2 and "unknown attack 'pgd-2o'" in err and "did you mean" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_parse_attacks_groups_pgd_readouts_and_image_counts():
    reqs = parse_attacks("clean,pgd-500,pgd-7,gama-pgd-100,aa@1000,pgd-20", 10000)
    jobs = build_jobs(reqs, Settings(eps=0.1, pgd_step=0.01))
    assert [j.key for j in jobs] == ["clean@10000", "pgd@10000", "gama-pgd-100@10000", "aa@1000"]
    pgd = jobs[1]
    assert pgd.rows == ["pgd-7", "pgd-20", "pgd-500"] and pgd.final == "pgd-500"
    assert pgd.params["steps"] == [7, 20, 500]
    assert jobs[3].outputs == ["aa", "aa/apgd-ce", "aa/apgd-t", "aa/fab-t", "aa/square"]
    assert registry.parse_step("eps/4", 0.1) == pytest.approx(0.025)
    assert registry.parse_step("2/255", 0.1) == pytest.approx(2 / 255)
    assert registry.parse_step(" EPS * 0.5 ", 0.1) == pytest.approx(0.05)
    assert registry.parse_step("eps", 0.1) == pytest.approx(0.1) and registry.parse_step("1", 0.1) == 1.0


@pytest.mark.parametrize("text", ["eps*-0.1", "eps/-4", "eps*0", "0", "-0.01", "eps*20", "2"])
def test_pgd_step_must_be_positive_and_at_most_one(text):
    # a negative step walks down the loss and a zero one never moves: both inflate robust accuracy
    with pytest.raises(UsageError, match=r"^--pgd-step .* must lie in \(0, 1\]") as info:
        registry.parse_step(text, 0.1)
    assert repr(text) in str(info.value) and len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize("text", ["foo", "eps/0", "eps/", "eps+1", "nan"])
def test_pgd_step_that_is_not_a_step_names_the_flag(text):
    with pytest.raises(UsageError, match=r"^--pgd-step .* is not understood; use e\.g\. eps/4") as info:
        registry.parse_step(text, 0.1)
    assert repr(text) in str(info.value) and "eps " + repr(text) not in str(info.value)


def test_bad_pgd_step_on_the_command_line_exits_2_and_writes_nothing(undefended_checkpoint, tmp_path,
                                                                      real_data_dir, capsys):
    out = tmp_path / "o"
    code, _, err = run_cli(eval_args(undefended_checkpoint, out, real_data_dir, "--pgd-step", "eps*-0.1"), capsys)
    assert code == 2 and "--pgd-step 'eps*-0.1'" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_eval_writes_table_with_worst_case_and_provenance(undefended_checkpoint, tmp_path, real_data_dir, capsys):
    out = tmp_path / "ev"
    code, stdout, _ = run_cli(eval_args(undefended_checkpoint, out, real_data_dir,
                                        attacks="clean,fgsm,pgd-5,pgd-10,gama-pgd-10@32"), capsys)
    assert code == 0
    result = json.loads((out / "eval.json").read_text())
    rows = {r["name"]: r for r in result["attacks"]}
    assert list(rows) == ["clean", "fgsm", "pgd-5", "pgd-10", "gama-pgd-10"]
    assert rows["clean"]["accuracy"] > 0.8 and rows["pgd-10"]["robust"] <= rows["pgd-5"]["robust"]
    assert rows["gama-pgd-10"]["n"] == 32
    state = json.loads((out / "state.json").read_text())
    flags = {name: text for job in state["jobs"].values() for name, text in job["flags"].items()}
    worst = {w["n"]: w for w in result["worst_case"]}
    assert set(worst) == {32, 64}
    for n, w in worst.items():
        expected = sum(all(flags[a][i] == "1" for a in w["attacks"]) for i in range(n))
        assert w["robust"] == expected <= min(rows[a]["robust"] for a in w["attacks"])
    assert result["checkpoint"]["sha256"] and result["provenance"]["commit"] and result["eps"] == 0.3
    md = (out / "eval.md").read_text()
    assert "worst case" in md and result["checkpoint"]["sha256"] in md and result["provenance"]["commit"] in md
    assert md.strip() in stdout


def test_plain_state_dict_with_model_flag_and_refusal_of_pickles(undefended_mnist, tmp_path, real_data_dir, capsys):
    plain = tmp_path / "plain.pt"
    torch.save({"state_dict": undefended_mnist.state_dict()}, plain)
    args = ["--model", "small-cnn", "--dataset", "mnist", "--eps", "0.3"]
    code, _, err = run_cli(eval_args(plain, tmp_path / "o", real_data_dir, *args, n="32", attacks="clean,fgsm"), capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "eval.json").read_text())["attacks"][0]["accuracy"] > 0.8
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": undefended_mnist.state_dict(), "extra": Path("x")}, evil)
    code, _, err = run_cli(eval_args(evil, tmp_path / "o2", real_data_dir, *args, n="32", attacks="clean"), capsys)
    assert code == 2 and "refusing" in err


def test_run_directory_evaluates_best_and_best_ema(undefended_checkpoint, tmp_path, real_data_dir, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("best", "best-ema"):
        (run / f"{name}.safetensors").write_bytes(undefended_checkpoint.read_bytes())
    code, _, _ = run_cli(eval_args(run, run / "eval", real_data_dir, n="32", attacks="clean,fgsm"), capsys)
    assert code == 0
    assert (run / "eval" / "best" / "eval.json").is_file() and (run / "eval" / "best-ema" / "eval.json").is_file()
    assert (run / "eval" / "eval.md").read_text().count("## Robust evaluation") == 2


def test_threat_model_violation_stops_the_evaluation(undefended_checkpoint, tmp_path, real_data_dir, capsys,
                                                     monkeypatch):
    def cheat(reqs, s):
        run = lambda m, x, y, g: JobOutput((x + 2 * s.eps).clamp(0, 1))  # noqa: E731
        return [registry.Job(f"cheat@{r.n}", r.n, ["cheat"], ["cheat"], "cheat", {"cheat": "cheat"}, {"cheat": ""},
                             {"n": r.n}, run) for r in reqs]

    monkeypatch.setitem(registry.FAMILIES, "cheat", registry.Family(r"cheat", "cheat", "leaves the ball", cheat))
    out = tmp_path / "o"
    code, _, err = run_cli(eval_args(undefended_checkpoint, out, real_data_dir, n="32", attacks="clean,cheat"), capsys)
    assert code == 1 and "threat model violation" in err and "eps is 0.3" in err
    state = json.loads((out / "state.json").read_text())
    assert "cheat@32" not in state["jobs"] or state["jobs"]["cheat@32"]["batches"] == 0
    assert not (out / "eval.json").exists()


def test_resume_with_other_settings_is_refused(undefended_checkpoint, tmp_path, real_data_dir, capsys):
    out = tmp_path / "o"
    assert run_cli(eval_args(undefended_checkpoint, out, real_data_dir, n="32", attacks="clean,fgsm"), capsys)[0] == 0
    code, _, err = run_cli(eval_args(undefended_checkpoint, out, real_data_dir, "--seed", "1", n="32",
                                     attacks="clean,fgsm"), capsys)
    assert code == 2 and "other settings" in err
    code, _, err = run_cli(eval_args(undefended_checkpoint, out, real_data_dir, "--seed", "1", "--overwrite", n="32",
                                     attacks="clean,fgsm"), capsys)
    assert code == 0


def test_killed_eval_resumes_to_the_same_numbers(undefended_checkpoint, tmp_path, real_data_dir):
    """SIGKILL a running ``nuat eval`` in the middle of an attack, start it again, and compare with
    an uninterrupted run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    attacks = "clean,pgd-20,pgd-40,gama-pgd-40"

    def cmd(out):
        return [sys.executable, "-m", "nuat", *eval_args(undefended_checkpoint, out, real_data_dir, "--batch-size", "16",
                                                         n="192", attacks=attacks)]

    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_path, deadline = killed / "state.json", time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            try:
                jobs = json.loads(state_path.read_text())["jobs"]
            except (OSError, ValueError):
                jobs = {}
            if jobs.get("gama-pgd-40@192", {}).get("batches", 0) >= 1:
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partial = json.loads(state_path.read_text())["jobs"]
    assert 1 <= partial["gama-pgd-40@192"]["batches"] < 12, "the kill did not land in the middle of an attack"
    assert not (killed / "eval.json").exists()

    subprocess.run(cmd(killed), env=env, check=True, capture_output=True)
    straight = tmp_path / "straight"
    subprocess.run(cmd(straight), env=env, check=True, capture_output=True)
    resumed = json.loads((killed / "eval.json").read_text())
    uninterrupted = json.loads((straight / "eval.json").read_text())
    assert numbers(resumed) == numbers(uninterrupted)
    a, b = (json.loads((p / "state.json").read_text())["jobs"] for p in (killed, straight))
    assert {k: v["flags"] for k, v in a.items()} == {k: v["flags"] for k, v in b.items()}


def test_attack_spellings_are_canonical_and_repeats_refused():
    assert [r.name for r in parse_attacks("clean,pgd-020,gama-pgd-0100", 10)] == ["clean", "pgd-20", "gama-pgd-100"]
    with pytest.raises(UsageError, match="listed twice"):
        parse_attacks("pgd-20,pgd-020", 10)
    jobs = build_jobs(parse_attacks("gama-pgd-10", 10), Settings(eps=0.1, pgd_step=0.01))
    assert jobs[1].params["reference"] == "start" and "start point" in jobs[1].details["gama-pgd-10"]
    jobs = build_jobs(parse_attacks("gama-pgd-10", 10), Settings(eps=0.1, pgd_step=0.01, gama_reference="clean"))
    assert jobs[1].params["reference"] == "clean"


def test_scoring_runs_in_float32_under_a_callers_autocast():
    from nuat.eval.accuracy import batch_correct
    from nuat.eval.runner import score_batch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 10))
    dtypes = []
    model.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    x, y = torch.rand(16, 3, 4, 4), torch.randint(0, 10, (16,))
    job = build_jobs(parse_attacks("pgd-3", 16), Settings(eps=0.1, pgd_step=0.03))[1]
    plain = score_batch(model, job, x, y, None, torch.Generator().manual_seed(0), 0.1, "t")[0]
    expected = batch_correct(model, x, y, None, 0.1)
    dtypes.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = score_batch(model, job, x, y, None, torch.Generator().manual_seed(0), 0.1, "t")[0]
        clean = batch_correct(model, x, y, None, 0.1)
    assert set(dtypes) == {torch.float32}
    assert torch.equal(plain["pgd-3"], under["pgd-3"]) and torch.equal(expected, clean)


def test_attack_family_without_its_step_count_names_the_spelling():
    """'pgd' alone is not an attack; the error must not suggest 'pgd' itself."""
    for name, example in (("pgd", "pgd-100"), ("ifgsm", "ifgsm-7"), ("gama-pgd", "gama-pgd-100")):
        with pytest.raises(UsageError) as info:
            parse_attacks(f"clean,{name}", 100)
        message = str(info.value)
        assert f"did you mean {name!r}" not in message, message
        assert f"{name}-N" in message and example in message, message
    with pytest.raises(UsageError, match=r"did you mean 'pgd-100'"):  # a near miss still gets a suggestion
        parse_attacks("pgd-1oo", 100)
    # a forgotten hyphen gets its own spelling back (it was 'pgd-100' for 'pgd20'), and the
    # message says what N stands for
    for typed, meant in (("pgd20", "pgd-20"), ("ifgsm10", "ifgsm-10"), ("gama-pgd50", "gama-pgd-50")):
        with pytest.raises(UsageError) as info:
            parse_attacks(f"clean,{typed}", 100)
        assert f"did you mean {meant!r}" in str(info.value) and "step counts, any N >= 1" in str(info.value)


def test_negative_nuclear_lambda_is_a_usage_error(tmp_path, real_data_dir, capsys):
    """A negative --nuclear-lam weakens the NuAT attack (and would inflate its robust accuracy)."""
    from nuat_testing import mnist_checkpoint

    ckpt = tmp_path / "ck.safetensors"
    mnist_checkpoint(ckpt)
    code, _, err = run_cli(eval_args(ckpt, tmp_path / "o", real_data_dir, "--nuclear-lam", "-1", attacks="nuclear"),
                           capsys)
    assert code == 2 and "--nuclear-lam -1" in err and ">= 0" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


# --- mutation-testing additions: what counts as robust --------------------------------------------

class _Threshold(torch.nn.Module):
    """Class 0 iff the single pixel is above 0.5 (z0 = x - 0.5, z1 = 0.5 - x)."""

    def forward(self, x):
        v = x.flatten(1)[:, :1]
        return torch.cat([v - 0.5, 0.5 - v], 1)


class _Pixels:
    """A four-image data set of 1x1x1 uint8 images for the runner (``get_batch`` and ``labels``)."""

    def __init__(self, values, labels):
        self.images = torch.tensor(values, dtype=torch.uint8).view(-1, 1, 1, 1)
        self.labels = torch.tensor(labels)

    def get_batch(self, index):
        return self.images[index]

    def __len__(self):
        return len(self.labels)


def _helper_job(n, eps):
    """A job whose "attack" moves every image eps TOWARDS its label: it can only fix mistakes."""
    def run(m, x, y, g):
        toward = torch.where(y == 0, 1.0, -1.0).view(-1, 1, 1, 1)
        return JobOutput((x + eps * toward).clamp(0, 1))
    return registry.Job(f"helper@{n}", n, ["helper"], ["helper"], "helper", {"helper": "helper"}, {"helper": ""},
                        {"n": n}, run)


def test_a_clean_misclassified_image_is_never_counted_robust(tmp_path):
    # pixels 0.4, 0.6, 0.45, 0.9 with labels 0, 0, 1, 1: clean-correct are images 1 and 2. The helper
    # "attack" would turn image 0 correct (0.4 -> 0.7), but misclassified images are not attacked
    from nuat.eval.runner import run_jobs
    data = _Pixels([102, 153, 115, 230], [0, 0, 1, 1])
    clean = build_jobs(parse_attacks("clean", 4), Settings(eps=0.3, pgd_step=0.1))[0]
    state = run_jobs(_Threshold(), [clean, _helper_job(4, 0.3)], data, tmp_path / "state.json", {}, eps=0.3, seed=0,
                     batch_size=3, device=torch.device("cpu"), progress=False)
    assert state.flags("clean@4", "clean").tolist() == [False, True, True, False]
    assert state.flags("helper@4", "helper").tolist() == [False, True, True, False]


def test_score_batch_leaves_images_outside_clean_ok_not_robust_and_readouts_backed_by_the_checked_batch():
    from nuat.eval.runner import score_batch
    x = torch.tensor([0.9, 0.8, 0.7, 0.6]).view(4, 1, 1, 1)
    y = torch.zeros(4, dtype=torch.long)  # all clean-correct for _Threshold
    job = registry.Job("j@4", 4, ["early", "final"], ["early", "final"], "final", {"early": "e", "final": "f"},
                       {"early": "", "final": ""}, {"n": 4},
                       lambda m, xs, ys, g: JobOutput(xs, {"early": torch.zeros(len(ys), dtype=torch.bool)}))
    clean_ok = torch.tensor([True, False, True, False])  # what the clean job recorded
    flags, _, _ = score_batch(_Threshold(), job, x, y, clean_ok, torch.Generator(), 0.1, "t")
    assert flags["final"].tolist() == [True, False, True, False]
    # the readout claims every attacked image was fooled, but the checked batch fools none of them
    assert flags["early"].tolist() == [True, False, True, False]


def test_registry_pgd_restarts_are_a_worst_case_over_every_restart(monkeypatch):
    # scripted pgd_trace: restart k returns x + 0.01 (k + 1); example 0 is fooled at step 2 in
    # restart 1 only, example 2 at step 4 in restart 0 only, example 3 at step 2 in restart 2 only
    fooled = {0: {4: [2]}, 1: {2: [0], 4: [0]}, 2: {2: [3], 4: [3]}}
    calls = []

    def scripted(m, x, y, *, readout, readout_seconds, **kw):
        k = len(calls)
        calls.append(k)
        robust = {c: ~torch.isin(torch.arange(len(y)), torch.tensor(fooled[k].get(c, []), dtype=torch.long))
                  for c in readout}
        readout_seconds.update(dict.fromkeys(readout, 1.0))
        return x + 0.01 * (k + 1), robust

    monkeypatch.setattr(registry, "pgd_trace", scripted)
    job = build_jobs(parse_attacks("pgd-2,pgd-4", 4), Settings(eps=0.1, pgd_step=0.01, pgd_restarts=3))[1]
    x, y = torch.full((4, 1, 1, 1), 0.5), torch.zeros(4, dtype=torch.long)
    out = job.run(None, x, y, torch.Generator())
    assert calls == [0, 1, 2]
    assert out.readouts["pgd-2"].tolist() == [False, True, True, False]
    assert out.seconds["pgd-2"] == 3.0
    # the checked batch holds each example's fooling restart; never-fooled ones the last restart's
    torch.testing.assert_close(out.adversarial.flatten(), torch.tensor([0.52, 0.53, 0.51, 0.53]))


def test_batch_correct_checks_the_threat_model_and_scores_in_eval_mode():
    from nuat.eval.accuracy import accuracy, batch_correct
    from nuat.projections import ThreatModelViolation
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)).train()
    with torch.no_grad():
        model[2].running_mean.fill_(5.0)  # eval-mode logits differ from batch-statistics ones
    x, y = torch.rand(32, 1, 2, 2), torch.randint(0, 3, (32,))
    with torch.no_grad():
        expected = model.eval()(x).argmax(1) == y
    model.train()
    assert torch.equal(batch_correct(model, x, y, None, 0.1), expected) and model.training
    assert torch.equal(batch_correct(model, x, y, lambda m, xx, yy: xx, 0.1), expected) and model.training
    with pytest.raises(ThreatModelViolation):
        batch_correct(model, x, y, lambda m, xx, yy: (xx + 0.2).clamp(0, 1), 0.1)
    # accuracy() counts images, not batches: 4 + 3 images
    data = _Pixels([153, 230, 102, 204, 51, 250, 0], [0, 0, 0, 1, 1, 0, 0])
    batches = [(data.images[:4].float() / 255, data.labels[:4]), (data.images[4:].float() / 255, data.labels[4:])]
    assert accuracy(_Threshold(), batches, eps=0.1) == pytest.approx(4 / 7)


def test_more_targets_than_wrong_classes_is_a_usage_error(tmp_path, real_data_dir, capsys):
    """A 10-class model has 9 wrong classes: '--targets 20' would be reported as top-20 but attack 9."""
    from nuat_testing import mnist_checkpoint

    ckpt = tmp_path / "ck.safetensors"
    mnist_checkpoint(ckpt)
    code, _, err = run_cli(eval_args(ckpt, tmp_path / "o", real_data_dir, "--targets", "10",
                                     attacks="targeted-pgd-2"), capsys)
    assert code == 2 and "--targets 10" in err and "at most 9" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()
    code, _, err = run_cli(eval_args(ckpt, tmp_path / "o9", real_data_dir, "--targets", "9", "--n", "8",
                                     attacks="targeted-pgd-2"), capsys)
    assert code == 0, err


def test_the_targets_count_is_checked_only_for_a_targeted_attack(tmp_path, real_data_dir, capsys):
    """A 5-class model: the default --targets (9) is no error, with or without targeted-pgd in --attacks."""
    from nuat_testing import mnist_checkpoint

    ckpt = tmp_path / "five.safetensors"
    mnist_checkpoint(ckpt, num_classes=5)
    code, _, err = run_cli(eval_args(ckpt, tmp_path / "o", real_data_dir, "--n", "8", attacks="clean,fgsm"), capsys)
    assert code == 0, err
    # with targeted-pgd, the default 9 becomes all 4 wrong classes; a 9 typed out is refused
    code, out, err = run_cli(eval_args(ckpt, tmp_path / "t", real_data_dir, "--n", "8", attacks="targeted-pgd-2"),
                             capsys)
    assert code == 0 and "targeted PGD-2 (all)" in out, err
    code, _, err = run_cli(eval_args(ckpt, tmp_path / "t9", real_data_dir, "--n", "8", "--targets", "9",
                                     attacks="targeted-pgd-2"), capsys)
    assert code == 2 and "--targets 9 is more than the 4 wrong classes" in err, err


@pytest.mark.parametrize("text", ["²", "0", "x", "-1"])
def test_a_bad_targets_value_is_one_usage_line(tmp_path, capsys, text):
    """'²' passes str.isdigit() but not int(): it was a ValueError traceback."""
    code, _, err = run_cli(["eval", str(tmp_path / "none.safetensors"), "--targets", text], capsys)
    assert code == 2 and "must be a positive number or 'all'" in err and len(err.splitlines()) == 1, err


# --- mutation-testing additions: NAME@N and step-count bounds, jobs run their attack with the
# --- settings (published GAMA schedule), AutoAttack's seed and seconds, command-line refusals

def test_image_and_step_counts_are_bounded():
    assert parse_attacks("aa@20000,pgd-20@50", 100)[0].n == 100  # capped at the images evaluated
    for bad in ("pgd-20@0", "pgd-0", "gama-pgd-0", "nuclear-0", "targeted-pgd-0", "ifgsm-0"):
        with pytest.raises(UsageError):
            parse_attacks(bad, 100)
    with pytest.raises(UsageError, match="drop its @N"):  # clean must cover every attacked image
        build_jobs(parse_attacks("clean@10,pgd-20", 100), Settings(eps=0.1, pgd_step=0.01))


def test_jobs_run_their_attack_with_the_settings_and_the_published_gama_schedule():
    from nuat.attacks import gama_pgd, nuclear, pgd_trace, targeted_pgd
    from nuat_testing import edge_batch, tiny_cnn

    model = tiny_cnn()
    x, _ = edge_batch()
    with torch.no_grad():
        y = model(x).argmax(1)
    s = Settings(eps=0.03, pgd_step=0.01, pgd_loss="margin", targets=1, nuclear_lam=0.5)
    jobs = {j.key: j for j in build_jobs(parse_attacks("pgd-5,gama-pgd-100,gama-pgd-20,targeted-pgd-5,nuclear", 16), s)}

    def gen():
        return torch.Generator().manual_seed(7)

    def adv(key):
        return jobs[key].run(model, x, y, gen()).adversarial

    def same(a, b):
        return torch.equal(a, b)

    # GAMA: drops at 60 and 85 and the guide over 25 of 100 steps (gama_pgd's defaults), scaled for 20
    assert same(adv("gama-pgd-100@16"), gama_pgd(model, x, y, eps=0.03, generator=gen()))
    assert same(adv("gama-pgd-20@16"), gama_pgd(model, x, y, eps=0.03, steps=20, drops=(12, 17), guide_steps=5,
                                               generator=gen()))
    assert same(adv("pgd@16"), pgd_trace(model, x, y, eps=0.03, steps=5, step_size=0.01, loss="margin",
                                         generator=gen())[0])
    assert not same(adv("pgd@16"), pgd_trace(model, x, y, eps=0.03, steps=5, step_size=0.01, generator=gen())[0])
    top1 = targeted_pgd(model, x, y, eps=0.03, steps=5, step_size=0.01, targets=1, generator=gen())
    assert same(adv("targeted-pgd-5@16"), top1)
    assert not same(top1, targeted_pgd(model, x, y, eps=0.03, steps=5, step_size=0.01, targets=None, generator=gen()))
    assert same(adv("nuclear@16"), nuclear(model, x, y, eps=0.03, lam=0.5, generator=gen()))
    assert not same(adv("nuclear@16"), nuclear(model, x, y, eps=0.03, lam=4.0, generator=gen()))


def test_pgd_job_takes_the_step_size_it_is_given():
    # robust binary linear model: two steps of eps from a uniform start end on the worst corner
    # x + eps * s; a smaller step would not get there
    from nuat_testing import Linear

    g = torch.Generator().manual_seed(2)
    w = torch.randn(2, 16, generator=g, dtype=torch.float64)
    model = Linear(w, torch.tensor([10.0, 0.0], dtype=torch.float64))
    x, y = 0.3 + 0.4 * torch.rand(8, 1, 4, 4, generator=g, dtype=torch.float64), torch.zeros(8, dtype=torch.long)
    job = build_jobs(parse_attacks("pgd-2", 8), Settings(eps=0.1, pgd_step=0.1))[1]
    x_adv = job.run(model, x, y, torch.Generator().manual_seed(0)).adversarial
    torch.testing.assert_close(x_adv, x + 0.1 * torch.sign(w[1] - w[0]).view(1, 1, 4, 4), rtol=0, atol=1e-12)


def test_autoattack_job_passes_the_evaluation_seed_and_sums_the_component_seconds(monkeypatch):
    from nuat.attacks.autoattack import VERSIONS, AutoAttackResult

    seen = {}

    def fake(m, x, y, *, eps, version, seed, check_square):
        seen.update(eps=eps, version=version, seed=seed)
        robust = {c: torch.ones(len(y), dtype=torch.bool) for c in VERSIONS[version]}
        return AutoAttackResult(x, robust, {c: float(i + 1) for i, c in enumerate(VERSIONS[version])}, ["w"])

    monkeypatch.setattr(registry, "run_autoattack", fake)
    job = build_jobs(parse_attacks("aa-v1", 4), Settings(eps=0.1, pgd_step=0.01, seed=3))[1]
    out = job.run(None, torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long), torch.Generator())
    assert seen == {"eps": 0.1, "version": "v1", "seed": 3}
    # seconds to get there: each component's time adds to the ones before it
    assert out.seconds == {"aa-v1/apgd-ce": 1.0, "aa-v1/apgd-dlr": 3.0, "aa-v1/fab": 6.0, "aa-v1/square": 10.0}


@pytest.mark.parametrize("extra, message", [
    (["--pgd-restarts", "0"], "--pgd-restarts must be at least 1, got 0"),
    (["--nuclear-lam", "nan"], "--nuclear-lam nan is invalid"),
    (["--n", "0"], "--n must be positive, got 0"),
    (["--batch-size", "0"], "--batch-size must be positive, got 0"),
    (["--dataset", "fashion-mnist"], "was trained on mnist, not fashion-mnist"),
])
def test_eval_option_refusals_are_one_line_and_write_nothing(undefended_checkpoint, tmp_path, real_data_dir, capsys,
                                                             extra, message):
    out = tmp_path / "o"
    code, _, err = run_cli(eval_args(undefended_checkpoint, out, real_data_dir, *extra, n="8", attacks="clean,pgd-2"),
                           capsys)
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_sanity_refuses_more_images_than_the_test_set(undefended_checkpoint, tmp_path, real_data_dir, capsys):
    for n, message in (("20000", "--n 20000 is larger than the mnist test set (10000)"), ("0", "--n must be positive")):
        out = tmp_path / f"o{n}"
        code, _, err = run_cli(["sanity", str(undefended_checkpoint), "--data-dir", str(real_data_dir), "--n", n,
                                "--out", str(out), "--no-progress"], capsys)
        assert code == 2 and message in err and len(err.splitlines()) == 1, err
        assert not out.exists()


def test_default_targets_on_a_ten_class_model_are_the_top_nine(undefended_checkpoint, tmp_path, real_data_dir, capsys):
    code, out, err = run_cli(eval_args(undefended_checkpoint, tmp_path / "o", real_data_dir, n="4",
                                       attacks="targeted-pgd-1"), capsys)
    assert code == 0 and "targeted PGD-1 (top-9)" in out, err


def test_a_plain_state_dict_resumed_with_another_normalisation_is_refused(undefended_mnist, tmp_path, real_data_dir,
                                                                          capsys):
    """The state knew the file only by its hash: --mean/--std (or --model) make another model of the
    same file, and a rerun into the same --out reported the first model's numbers."""
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in undefended_mnist.state_dict().items()}, str(plain))
    args = ["--model", "small-cnn", "--dataset", "mnist", "--eps", "0.3"]
    out = tmp_path / "o"
    code, _, err = run_cli(eval_args(plain, out, real_data_dir, *args, "--mean", "0", "--std", "1", n="16",
                                     attacks="clean"), capsys)
    assert code == 0, err
    spec = json.loads((out / "eval.json").read_text())["checkpoint"]["model_spec"]
    assert spec["name"] == "small-cnn" and spec["normalization"] == {"mean": [0.0], "std": [1.0]}
    code, _, err = run_cli(eval_args(plain, out, real_data_dir, *args, "--mean", "0.5", "--std", "0.2", n="16",
                                     attacks="clean"), capsys)
    assert code == 2 and "other settings" in err and "model_spec" in err, err


def test_the_default_eps_is_the_checkpoints_to_the_last_digit(undefended_mnist, tmp_path, real_data_dir, capsys):
    """It was printed with 6 significant digits and parsed back: 8/255 became 0.0313725, a slightly
    smaller ball than the one trained, and a later --eps 8/255 into the same --out was refused."""
    from nuat.checkpoints import save_model

    ckpt = tmp_path / "m.safetensors"
    save_model(ckpt, undefended_mnist, dataset="mnist", eps=8 / 255, threat_model="linf", method="erm", epoch=1)
    out = tmp_path / "o"
    code, _, err = run_cli(eval_args(ckpt, out, real_data_dir, n="8", attacks="clean,fgsm"), capsys)
    assert code == 0, err
    result = json.loads((out / "eval.json").read_text())
    assert result["eps"] == 8 / 255 and result["eps_text"] == "8/255"
    assert run_cli(eval_args(ckpt, out, real_data_dir, "--eps", "8/255", n="8", attacks="clean,fgsm"), capsys)[0] == 0


def test_a_cpu_autoattack_on_many_images_is_announced():
    """By default nuat eval runs AutoAttack on the whole test set: hours on a CPU, with no word."""
    import argparse
    import warnings

    from nuat.cli.eval_cmd import _warn_slow_autoattack
    from nuat.errors import RunWarning

    def warned(attacks, n, device="cpu"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _warn_slow_autoattack(argparse.Namespace(attacks=attacks, n=n), torch.device(device))
        return [str(w.message) for w in caught if issubclass(w.category, RunWarning)]

    assert "on the whole test set on a CPU can take hours" in warned("clean,pgd-20,aa", None)[0]
    assert "aa@N limits it" in warned("clean,aa", 5000)[0] and "5000 images" in warned("clean,aa", 5000)[0]
    assert warned("clean,aa@500", None) == [] and warned("clean,aa", 800) == [] and warned("clean,pgd-100", None) == []
    assert warned("clean,aa", None, device="meta") == []  # not a CPU

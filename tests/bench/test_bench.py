"""``nuat bench``: statistics, variants, floors, the report, and a short real run end to end."""

from __future__ import annotations

import argparse
import json
import math
import os
from types import SimpleNamespace

import pytest
import torch

from nuat.bench.runner import BenchConfig, _build, _floor_rounds, _iterate
from nuat.bench.timing import summarize
from nuat.bench.variants import parse_variant, parse_variants
from nuat.cli import main
from nuat.errors import UsageError


def test_summary_median_quartiles_range():
    s = summarize([5.0, 1.0, 3.0, 2.0, 4.0, float("nan")])
    assert (s.median, s.q1, s.q3, s.min, s.max, s.n) == (3.0, 2.0, 4.0, 1.0, 5.0, 5)
    assert s.rel_iqr == pytest.approx(2 / 3)
    assert math.isnan(summarize([]).median)


def test_variants():
    fp32 = parse_variant("fp32")
    assert (fp32.amp, fp32.channels_last, fp32.compile, fp32.group_size, fp32.nuclear_backend) == \
        ("off", False, False, None, "auto")
    v = parse_variant("bf16+channels-last+group32")
    assert (v.amp, v.channels_last, v.compile, v.group_size) == ("bf16", True, False, 32)
    fast = parse_variant("fast")
    assert (fast.amp, fast.channels_last, fast.compile, fast.group_size) == ("bf16", True, True, 64)
    assert [x.name for x in parse_variants("fp32,fast")] == ["fp32", "fast"]
    ns = parse_variant("fast+nuclear-newton-schulz")
    assert (ns.compile, ns.group_size, ns.nuclear_backend) == (True, 64, "newton-schulz")
    assert parse_variant("fp32+nuclear-newton-schulz").amp == "off"  # fp32 combines with non-amp parts
    assert (fast.compile_mode, parse_variant("compile").compile_mode) == ("default", "default")
    ro = parse_variant("fast+reduce-overhead")
    assert (ro.amp, ro.channels_last, ro.compile, ro.compile_mode, ro.group_size) == \
        ("bf16", True, True, "reduce-overhead", 64)
    assert (parse_variant("reduce-overhead").compile, parse_variant("reduce-overhead").amp) == (True, "off")
    for bad in ("fp16", "fp32,fp32", "bf16+", "group0", "nuclear-qr", "bf16+bf16", "fp32+bf16", "fast+fp32"):
        with pytest.raises(UsageError):
            parse_variants(bad)


def _option(command: str, dest: str) -> argparse.Action:
    """The parser's action for option ``dest`` of ``nuat <command>``."""
    from nuat.cli import build_parser

    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    [action] = [a for a in sub.choices[command]._actions if a.dest == dest]
    return action


def test_bench_help_names_every_variant_part():
    """``nuat bench --help`` is where the variant parts are listed: each of PARTS is named there."""
    from nuat.bench.variants import PARTS

    missing = [part for part in PARTS if part not in _option("bench", "variants").help]
    assert not missing, f"nuat bench --variants help does not name {missing}"


def test_floor_is_pass_counts_times_pass_times():
    probe = SimpleNamespace(seconds={"forward": [1.0, 2.0], "forward_input_backward": [2.5, 5.0],
                                     "forward_full_backward": [3.0, 6.0], "optimizer_step": [0.5, 0.5]})
    # NuAT: 3 forwards, 1 input backward (1.5), 2 full backwards (2 each), one optimiser step
    assert _floor_rounds([3, 1, 2], probe) == [3 + 1.5 + 4 + 0.5, 6 + 3 + 8 + 0.5]
    assert _floor_rounds([1, 0, 1], probe) == [3.5, 6.5]  # ERM: forward + full backward + step


def test_bench_config_errors():
    with pytest.raises(UsageError, match="did you mean"):
        BenchConfig(methods=["nuatt"]).validate()
    with pytest.raises(UsageError, match="twice"):
        BenchConfig(methods=["erm", "erm"]).validate()
    with pytest.raises(UsageError, match="--steps"):
        BenchConfig(methods=["erm"], steps=0).validate()
    # a model or eps given is checked before any work, naming the option, not replaced by the recipe's
    with pytest.raises(UsageError, match="unknown model ''"):
        BenchConfig(methods=["erm"], model="").validate()
    with pytest.raises(UsageError, match="--eps '2' is out of range"):
        BenchConfig(methods=["erm"], eps="2").validate()


def test_bench_cli_writes_json_and_markdown_table(real_data_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "bench" / "mnist"
    code = main(["bench", "--methods", "erm,nuat", "--steps", "1", "--trials", "2", "--warmup", "0",
                 "--data-dir", str(real_data_dir), "--batch-size", "32", "--out", str(out), "--quiet",
                 "--threads", "1", "--nuclear", "--loader", "--check-syncs", "--note", "test run"])
    assert code == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["config"]["model"] == "small-cnn" and result["config"]["batch_size"] == 32
    assert set(result["passes"]["fp32"]) >= {"forward", "forward_input_backward", "forward_full_backward",
                                             "optimizer_step"}
    rows = {m["method"]: m for m in result["methods"]}
    assert rows["erm"]["passes_per_example"] == [1, 0, 1] and rows["nuat"]["passes_per_example"] == [3, 1, 2]
    assert rows["nuat"]["seconds_per_iteration"]["n"] == 2 and rows["nuat"]["loss_finite"]
    assert rows["erm"]["relative_to_erm"]["median"] == 1.0
    assert rows["nuat"]["relative_to_erm"]["median"] > 1.0 and rows["nuat"]["floor_seconds"]["median"] > 0
    assert result["environment"]["torch"] == torch.__version__ and result["environment"]["commit"]
    assert {r["backend"] for r in result["nuclear"]} == {"svd", "gram", "newton-schulz", "host-svd"}
    md = out.with_suffix(".md").read_text()
    assert "| method | passes F / B_in / B_full | ms / iteration |" in md
    assert "| erm | 1 / 0 / 1 |" in md and "| nuat | 3 / 1 / 2 |" in md and "test run" in md
    assert "measured / floor" in md and "Nuclear norm backends" in md
    assert result["loader"][0]["dataset"] == "mnist" and "## Data loader" in md
    png = out.with_suffix(".png")
    assert png.read_bytes()[:4] == b"\x89PNG" and f"]({png.name})" in md  # the figure, linked from the report
    assert result["report"] == {"title": "nuat bench", "notes": ["test run"]}
    assert "| method |" in capsys.readouterr().out
    assert "## Targets (CPU)" in md and "<= 3.3" in md
    assert rows["nuat"]["minor_faults_per_iteration"] >= 0 and rows["nuat"]["system_seconds_per_iteration"] >= 0
    assert "minor page faults erm " in md and ", nuat " in md
    # --check-syncs on the CPU: host reads (NuAT: its loss's nuclear norm every iteration, its
    # attack's every other); the CUDA-only sync count stays out
    assert rows["erm"]["host_reads_per_iteration"] == 0 and rows["nuat"]["host_reads_per_iteration"] == 1.5
    assert "host_syncs_per_iteration" not in rows["nuat"] and "Host reads per iteration" in md
    # --render rebuilds the report from the JSON alone; a CUDA result is held to the GPU targets
    result["environment"]["device"] = "cuda:0"
    gpu_json = tmp_path / "gpu.json"
    gpu_json.write_text(json.dumps(result))
    assert main(["bench", "--render", str(gpu_json), "--title", "re-rendered"]) == 0
    gpu_md = gpu_json.with_suffix(".md").read_text()
    assert gpu_md.startswith("# re-rendered") and "## Targets (GPU)" in gpu_md and "test run" in gpu_md
    assert gpu_json.with_suffix(".png").is_file()
    assert "| NuAT / ERM | fp32 |" in gpu_md and "<= 2.8 |" in gpu_md and "| NuAT images / s | fp32 |" in gpu_md
    # the title given is kept in the JSON (a report re-titled once lost its title and notes on the
    # next render), the measurements are not touched
    rewritten = json.loads(gpu_json.read_text())
    assert rewritten["report"] == {"title": "re-rendered", "notes": ["test run"]}
    assert {k: v for k, v in rewritten.items() if k != "report"} == {k: v for k, v in result.items() if k != "report"}
    assert main(["bench", "--render", str(gpu_json)]) == 0 and gpu_md == gpu_json.with_suffix(".md").read_text()
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["bench", "--render", str(broken)]) == 2
    assert not broken.with_suffix(".md").exists() and not broken.with_suffix(".png").exists()
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"config": result["config"]}))  # no environment, no methods
    assert main(["bench", "--render", str(partial)]) == 2
    assert not partial.with_suffix(".md").exists() and not partial.with_suffix(".png").exists()
    gpu_json.with_suffix(".png").unlink()
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # no matplotlib: no figure, no link
    assert main(["bench", "--render", str(gpu_json)]) == 0
    assert "![" not in gpu_json.with_suffix(".md").read_text() and not gpu_json.with_suffix(".png").exists()


def test_loop_never_asks_a_compiled_model_for_its_truth_value(real_data_dir):
    """torch 2.11's compiled wrapper raises on len() (and so on bool()); the step must not ask."""

    class NoTruth(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)

        def __len__(self) -> int:
            raise TypeError("NoTruth does not support len()")

        def __bool__(self) -> bool:
            raise TypeError("NoTruth has no truth value")

    cfg = BenchConfig(methods=["nuat"], data_dir=str(real_data_dir), batch_size=32, warmup=0, steps=1, trials=1)
    t = _build(cfg, "nuat", parse_variant("fp32"), "unused")
    t.run.step_model = NoTruth(t.run.model)
    _iterate(t, 2)
    assert t.progress.loss_is_finite()


def test_fast_path_switches_run_on_cpu(real_data_dir):
    """bf16 autocast, channels_last and a nuclear group size through the loop's own step."""
    cfg = BenchConfig(methods=["nuat"], data_dir=str(real_data_dir), batch_size=32, warmup=0, steps=1, trials=1)
    t = _build(cfg, "nuat", parse_variant("bf16+channels-last+group16"), "unused")
    assert t.run.cfg.amp == "bf16" and t.run.cfg.channels_last
    assert t.run.method.group_size == 16
    assert t.run.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    before = t.run.model.conv1.weight.detach().clone()
    _iterate(t, 2)
    assert t.progress.loss_is_finite() and t.progress.passes == [3 * 64, 64, 2 * 64]
    assert t.run.model.conv1.weight.dtype == torch.float32
    assert not torch.equal(before, t.run.model.conv1.weight)


def test_nuclear_backend_variant_reaches_every_nuclear_norm_call(real_data_dir, monkeypatch):
    import nuat.losses as losses
    used = []
    real = losses._singular_value_sum
    monkeypatch.setattr(losses, "_singular_value_sum", lambda d, backend: used.append(backend) or real(d, backend))
    cfg = BenchConfig(methods=["nuat"], data_dir=str(real_data_dir), batch_size=32, warmup=0, steps=1, trials=1)
    t = _build(cfg, "nuat", parse_variant("nuclear-newton-schulz"), "unused")
    _iterate(t, 2)  # batch 0: attack + loss; batch 1: loss only (the attack's term alternates)
    assert used == ["newton-schulz"] * 3 and t.progress.loss_is_finite()
    used.clear()
    losses.nuclear_norm(torch.ones(4, 3), torch.zeros(4, 3))  # outside the step: the default again
    assert used == ["svd"]


def test_nuclear_backends_train_alike(real_data_dir):
    """The same three NuAT steps from the same state with svd, newton-schulz and host-svd: the same
    losses and weights up to rounding (an attack sign may flip where a pixel's gradient is ~0)."""
    cfg = BenchConfig(methods=["nuat"], data_dir=str(real_data_dir), batch_size=32, warmup=0, steps=1, trials=1)
    runs = []
    for backend in ("svd", "newton-schulz", "host-svd"):
        torch.manual_seed(0)
        t = _build(cfg, "nuat", parse_variant(f"nuclear-{backend}"), "unused")
        _iterate(t, 3)
        runs.append(t)
    a = runs[0].progress.sums
    wa = runs[0].run.model.conv1.weight.detach()
    for t in runs[1:]:
        for key in ("loss", "reg"):
            assert float(t.progress.sums[key]) == pytest.approx(float(a[key]), rel=1e-3)
        wb = t.run.model.conv1.weight.detach()
        torch.testing.assert_close(wa, wb, rtol=0, atol=1e-3 * float(wa.abs().max()))


@pytest.mark.skipif(os.environ.get("NUAT_TEST_COMPILE") != "1",
                    reason="torch.compile takes minutes on a small CPU; set NUAT_TEST_COMPILE=1")
@pytest.mark.parametrize("variant", ["compile", "reduce-overhead"])
def test_compile_switch_runs(real_data_dir, variant):
    cfg = BenchConfig(methods=["nuat"], data_dir=str(real_data_dir), batch_size=32, warmup=0, steps=1, trials=1)
    t = _build(cfg, "nuat", parse_variant(variant), "unused")
    assert t.run.step_model is not t.run.model
    _iterate(t, 2)
    assert t.progress.loss_is_finite()
    assert not any(k.startswith("_orig_mod") for k in t.run.model.state_dict())  # checkpoints unchanged


def test_train_cli_fast_flags(tmp_path):
    from nuat.cli import build_parser
    from nuat.cli.train_cmd import resolve_config

    def cfg(*argv):
        args = build_parser().parse_args(["train", "--dataset", "mnist", "--out", str(tmp_path / "r"), *argv])
        return resolve_config(args)

    plain = cfg("--method", "nuat")
    assert (plain.amp, plain.channels_last, plain.compile) == ("off", False, False)
    assert "nuclear_group_size" not in plain.method_hparams
    fast = cfg("--method", "nuat", "--fast")
    assert (fast.amp, fast.channels_last, fast.compile) == ("bf16", True, True)
    assert fast.method_hparams["nuclear_group_size"] == 64
    assert cfg("--method", "nuat", "--fast", "--nuclear-group-size", "32").method_hparams["nuclear_group_size"] == 32
    assert "nuclear_group_size" not in cfg("--method", "pgd-at", "--fast").method_hparams
    assert fast.compile_mode == "default"
    graphs = cfg("--method", "nuat", "--compile-mode", "reduce-overhead")  # implies --compile, nothing else
    assert (graphs.amp, graphs.channels_last, graphs.compile, graphs.compile_mode) == \
        ("off", False, True, "reduce-overhead")
    assert cfg("--method", "nuat", "--fast", "--compile-mode", "reduce-overhead").compile_mode == "reduce-overhead"
    # --compile-mode default alone compiles nothing: the help says which mode implies --compile
    assert cfg("--method", "nuat", "--compile-mode", "default").compile is False
    assert "reduce-overhead implies --compile" in _option("train", "compile_mode").help
    assert cfg("--method", "erm", "--amp", "bf16", "--channels-last").amp == "bf16"
    assert plain.nuclear_backend == fast.nuclear_backend == "auto"
    assert cfg("--method", "nuat", "--nuclear-backend", "newton-schulz").nuclear_backend == "newton-schulz"
    with pytest.raises(SystemExit) as exc:
        cfg("--method", "nuat", "--nuclear-backend", "qr")
    assert exc.value.code == 2


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux")
def test_cpu_training_step_does_not_fault_in_fresh_pages(real_data_dir):
    """With glibc keeping freed memory (set by build_run on the CPU), the step's activations reuse
    mapped pages: no thousands of minor page faults per iteration."""
    import resource

    from nuat.train.fastpath import keep_freed_cpu_memory

    cfg = BenchConfig(methods=["nuat"], data_dir=str(real_data_dir), batch_size=128, warmup=0, steps=1, trials=1)
    t = _build(cfg, "nuat", parse_variant("fp32"), "unused")
    if not keep_freed_cpu_memory():
        pytest.skip("not glibc")
    _iterate(t, 4)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    _iterate(t, 6)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 6
    assert faults < 200, f"{faults:.0f} minor page faults per iteration"


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux")
def test_host_counters_see_fresh_pages_being_touched():
    """nuat bench's page-fault count grows by one fault per 4 KiB page of freshly mapped memory
    that is written (a 16 MiB anonymous map: 4,096 pages)."""
    import mmap

    from nuat.bench.timing import host_counters

    region = mmap.mmap(-1, 16 << 20)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):  # transparent huge pages would serve it in 2 MiB faults
        region.madvise(mmap.MADV_NOHUGEPAGE)
    before = host_counters()
    for offset in range(0, 16 << 20, 4096):
        region[offset] = 1
    after = host_counters()
    region.close()
    assert after[0] - before[0] >= 4096
    assert after[1] >= before[1]


def test_compiled_step_model_keeps_static_shapes_after_a_smaller_last_batch():
    from nuat.train.fastpath import step_model
    graphs, calls = [], []

    def record(gm, example_inputs):
        index = len(graphs)
        # a dynamic-shape graph takes the batch size as a symbolic integer input
        graphs.append(any(not isinstance(t, torch.Tensor) for t in example_inputs))

        def run(*args):
            calls.append(index)
            return gm.forward(*args)
        return run

    torch._dynamo.reset()
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    compiled = step_model(model, compile=True, backend=record)
    for batch in (8, 8, 5, 8):
        compiled(torch.randn(batch, 6))
    torch._dynamo.reset()
    assert graphs == [False, False]  # one static graph per batch size
    assert calls == [0, 0, 1, 0]  # full batches stay on the first graph


def test_loader_bench_rows_for_memory_and_files(real_data_dir, tmp_path, monkeypatch):
    from PIL import Image

    from nuat.bench.loader import bench_loader, markdown_section

    monkeypatch.setenv("NUAT_DECODE_THREADS", "2")
    for split, n in (("train", 12), ("val", 2)):
        for c in ("n01", "n02"):
            (tmp_path / "imagenet" / split / c).mkdir(parents=True)
            for k in range(n):
                Image.new("RGB", (40, 30), (k * 20, 100, 50)).save(tmp_path / "imagenet" / split / c / f"{k}.png")
    quiet = lambda line: None  # noqa: E731
    rows = bench_loader("imagenet", batch_size=4, device=torch.device("cpu"), data_dir=str(tmp_path), batches=3,
                        trials=2, decode_threads=(3,), log=quiet)
    assert [r["decode_threads"] for r in rows] == [1, 2, 3]
    assert all(r["batches_timed"] == 3 and len(r["seconds"]) == 2 and r["images_per_s"] > 0 for r in rows)
    assert rows[0]["source"] == "files, streamed" and rows[0]["augment"] == "random-resized-crop-flip"
    memory = bench_loader("mnist", batch_size=256, device=torch.device("cpu"), data_dir=str(real_data_dir),
                          batches=2, trials=1, log=quiet)
    assert len(memory) == 1 and memory[0]["decode_threads"] is None and memory[0]["source"].startswith("in memory")
    lines = markdown_section(rows + memory, [{"images_per_s": rows[0]["images_per_s"]}])
    assert lines[0].startswith("## Data loader") and "| imagenet | files, streamed |" in lines[4]
    assert lines[4].endswith("| 1.00 |") and len(lines) == 4 + 4
    with pytest.raises(UsageError, match="2 full batches"):
        bench_loader("imagenet", batch_size=16, device=torch.device("cpu"), data_dir=str(tmp_path), log=quiet)


def _tiny_mnist(folder, per_class: int) -> None:
    """The four MNIST IDX files (gzipped) with ``per_class`` images of each digit, train and test."""
    import gzip
    import struct

    import numpy as np

    folder.mkdir(parents=True)
    n = 10 * per_class
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for prefix in ("train", "t10k"):
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            raw = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
            (folder / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(raw + array.tobytes()))


def test_batch_larger_than_the_training_set_is_a_usage_error(tmp_path):
    """No full batch would ever come (the timed loop skips incomplete ones): refused, not an endless loop."""
    _tiny_mnist(tmp_path / "mnist", per_class=102)  # 1020 images: 20 left after the 100-per-class validation split
    cfg = BenchConfig(methods=["erm"], data_dir=str(tmp_path), batch_size=21, steps=1, trials=1, warmup=0,
                      device="cpu").validate()
    with pytest.raises(UsageError, match=r"--batch-size 21 is larger than the mnist training set \(20 images"):
        _build(cfg, "erm", parse_variant("fp32"), str(tmp_path / "out"))
    cfg.batch_size = 20
    timed = _build(cfg, "erm", parse_variant("fp32"), str(tmp_path / "out"))
    _iterate(timed, 2)  # one full batch per epoch is enough


def test_out_keeps_dots_that_are_not_a_report_suffix(tmp_path, monkeypatch):
    import nuat.bench.report as report

    written = []

    def write_report(result, json_path, **kwargs):  # the Markdown and figure are not the point here
        written.append(json_path)
        return json_path.with_suffix(".md"), "", None

    monkeypatch.setattr(report, "write_report", write_report)
    for given, stem in (("mnist-lr0.05", "mnist-lr0.05"), ("mnist-lr0.05.json", "mnist-lr0.05"),
                        ("v1.2.md", "v1.2"), ("b.png", "b"), ("plain", "plain")):
        json_path, md_path, _ = report.write({"config": {}}, tmp_path / given)
        assert json_path == tmp_path / f"{stem}.json" and json_path.is_file(), (given, json_path)
        assert md_path == tmp_path / f"{stem}.md" and written[-1] == json_path
    assert not (tmp_path / "mnist-lr0.json").exists()


def test_bench_config_checks_the_device_first():
    """An unknown or absent --device fails in validate, before any model is built or timed."""
    with pytest.raises(UsageError, match="--device 'bogus'"):
        BenchConfig(methods=["erm"], device="bogus").validate()
    missing = "cuda:99" if torch.cuda.is_available() else "cuda"
    with pytest.raises(UsageError, match=f"--device '{missing}'"):
        BenchConfig(methods=["erm"], device=missing).validate()


def test_result_takes_ratios_per_trial_and_images_per_wall_second():
    """``_result`` on hand-made timings (3 trials, CPU clock): ratios are medians of per-trial
    ratios (not ratios of medians), images / s are per wall second, floors and pass ratios
    follow the pass times of the same trial, passes are per example."""
    import datetime

    from nuat.bench.runner import _result
    from nuat.train.progress import EpochProgress

    variant = parse_variant("fp32")
    cfg = BenchConfig(methods=["erm", "nuat"], steps=2, trials=3, warmup=0, clock="cpu")

    def timed(method, cpu, wall, passes, faults=None, system=None):
        run = SimpleNamespace(cfg=SimpleNamespace(batch_size=32, dataset="mnist", model="small-cnn", eps=0.3))
        progress = EpochProgress(sums={"n": torch.tensor(64.0)}, passes=[64 * p for p in passes])
        return SimpleNamespace(method=method, variant=variant, run=run, progress=progress, seconds=list(cpu),
                               clocks={"wall": list(wall), "cpu": list(cpu)}, peak=None, host_syncs=None,
                               host_reads=None, profile=None, minor_faults=faults, system_seconds=system)

    erm = timed("erm", [1.0, 2.0, 4.0], [1.0, 1.0, 1.0], [1, 0, 1])
    nuat = timed("nuat", [3.0, 2.0, 12.0], [0.5, 0.25, 1.0], [3, 1, 2], faults=30, system=0.06)
    seconds = {"forward": [1.0, 2.0, 1.0], "forward_input_backward": [2.5, 5.0, 2.0],
               "forward_full_backward": [3.0, 6.0, 3.0], "optimizer_step": [0.5, 0.5, 0.5]}
    probe = SimpleNamespace(seconds=seconds, clocks={"wall": seconds, "cpu": seconds})
    result = _result(cfg, torch.device("cpu"), [erm, nuat], {"fp32": probe},
                     datetime.datetime.now(datetime.timezone.utc), None, "process RSS", {})
    p = result["passes"]["fp32"]
    assert p["input_backward_over_forward"]["median"] == pytest.approx(1.5)  # per trial: 1.5, 1.5, 1.0
    assert p["full_backward_over_forward"]["median"] == pytest.approx(2.0)
    rows = {m["method"]: m for m in result["methods"]}
    n = rows["nuat"]
    assert n["passes_per_example"] == [3, 1, 2]
    assert n["relative_to_erm"]["median"] == pytest.approx(3.0)  # per trial 3, 1, 3 (medians: 3 / 2)
    assert n["images_per_s"] == pytest.approx(32 / 0.5)  # batch / median wall seconds
    # floors per trial: 3 f + (fi - f) + 2 (ff - f) + step = 9, 17.5, 8.5
    assert n["floor_seconds"]["median"] == pytest.approx(9.0)
    assert n["measured_over_floor"]["median"] == pytest.approx(1 / 3)  # 3/9, 2/17.5, 12/8.5
    assert rows["erm"]["relative_to_erm"]["median"] == 1.0
    assert n["iterations_timed"] == 6
    # page faults and system time over all timed iterations, per iteration; none where not counted
    assert n["minor_faults_per_iteration"] == pytest.approx(5.0)
    assert n["system_seconds_per_iteration"] == pytest.approx(0.01)
    assert "minor_faults_per_iteration" not in rows["erm"]


def test_summary_of_an_even_count_interpolates():
    s = summarize([4.0, 1.0, 3.0, 2.0])
    assert (s.median, s.q1, s.q3, s.min, s.max, s.n) == (2.5, 1.75, 3.25, 1.0, 4.0, 4)


def test_time_block_reports_per_call_wall_and_cpu_time(monkeypatch):
    """Under fake clocks that only the timed function advances (0.5 s wall, 0.25 s CPU per call),
    time_block returns exactly those per-call figures, in the order (wall, CPU)."""
    import nuat.bench.timing as timing

    clock = {"wall": 10.0, "cpu": 3.0}

    def work():
        clock["wall"] += 0.5
        clock["cpu"] += 0.25

    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: clock["wall"],
                                                        process_time=lambda: clock["cpu"]))
    assert timing.time_block(work, 8, torch.device("cpu")) == (0.5, 0.25)


def test_loader_bench_seconds_are_per_batch(tmp_path, monkeypatch):
    """With a clock that advances one second per reading, each trial lasts one second over the
    timed batches: seconds per batch = 1 / batches, images / s = batch size x batches."""
    import itertools

    import nuat.bench.loader as loader_mod

    _tiny_mnist(tmp_path / "mnist", 4)  # 40 images, batch 8: 4 timed batches after the first
    ticks = itertools.count()  # the loader module's clock only (not time.perf_counter for everyone)
    monkeypatch.setattr(loader_mod, "time", SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    rows = loader_mod.bench_loader("mnist", batch_size=8, device=torch.device("cpu"), data_dir=str(tmp_path),
                                   batches=10, trials=2, log=lambda line: None)
    assert rows[0]["batches_timed"] == 4 and rows[0]["seconds"] == [0.25, 0.25]
    assert rows[0]["seconds_per_batch"]["median"] == 0.25 and rows[0]["images_per_s"] == 32


def test_trials_rotate_which_unit_is_timed_first(tmp_path, monkeypatch):
    """Every trial starts with the next unit (pass probe, method, ...), so no unit always runs
    first after the previous trial's cool-down or heat-up. The timed blocks are told apart by
    what they time (a pass probe's named passes, else a method's step), and the trials by the
    log's "bench: trial k/n" line that ends each of them (warm-up blocks come before trial 1)."""
    import nuat.bench.runner as runner
    from nuat.bench.timing import PASS_NAMES

    _tiny_mnist(tmp_path / "mnist", per_class=102)
    events = []
    real = runner.time_block

    def spy(fn, repeats, device):
        events.append("probe" if getattr(fn, "__name__", "") in PASS_NAMES else "erm")
        return real(fn, repeats, device)

    def log(line):
        if line.startswith("bench: trial "):
            events.append("end")

    monkeypatch.setattr(runner, "time_block", spy)
    cfg = BenchConfig(methods=["erm"], data_dir=str(tmp_path), batch_size=10, steps=1, trials=3, warmup=0,
                      device="cpu")
    runner.run_bench(cfg, log=log)
    text = " ".join(events)
    trials = [t.split() for t in text.split("end")[:3]]
    trials[0] = trials[0][-len(PASS_NAMES) - 1:]  # drop the untimed warm-up blocks before trial 1
    # each trial times the probe's passes once (together, in their order) and the method once
    probe = ["probe"] * len(PASS_NAMES)
    assert trials == [probe + ["erm"], ["erm"] + probe, probe + ["erm"]]


def test_profiles_run_before_the_host_read_check(real_data_dir, monkeypatch):
    """A compiled forward that has run under the host-read check's TorchDispatchMode runs eagerly
    from then on, so every profile (methods and pass probes) must come before every check."""
    import nuat.bench.runner as runner
    from nuat.bench.host_reads import record_host_reads
    calls = []

    def record(gm, example_inputs):
        return lambda *args: calls.append(1) or gm.forward(*args)

    compiled = torch.compile(torch.nn.Linear(6, 4), backend=record, dynamic=False)
    x = torch.randn(8, 6)
    compiled(x)
    record_host_reads(lambda: compiled(x))
    compiled(x)
    torch._dynamo.reset()
    assert len(calls) == 1  # the torch behaviour the order guards against (torch 2.11-2.13)

    events = []
    real_profile, real_reads = runner.profile_iterations, runner.record_host_reads
    monkeypatch.setattr(runner, "profile_iterations", lambda *a: events.append("profile") or real_profile(*a))
    monkeypatch.setattr(runner, "record_host_reads", lambda fn: events.append("reads") or real_reads(fn))
    cfg = BenchConfig(methods=["erm", "nuat"], data_dir=str(real_data_dir), batch_size=32, steps=1, trials=1,
                      warmup=0, device="cpu", profile=1, check_syncs=True)
    result = runner.run_bench(cfg, log=lambda line: None)
    # 2 methods + 4 passes of the one probe, then 2 host-read checks
    assert events == ["profile"] * (2 + 4) + ["reads"] * 2
    assert result["config"]["profile_before_host_checks"] is True  # what pass_ratios.py reads


def test_target_window_is_where_both_ratio_targets_hold_at_the_floors():
    from nuat.bench.timing import pass_floor, ratios_at_floor, target_window
    low, high = target_window(2.8, 2.8)
    assert (low, high) == pytest.approx((4.6 / 7.2, 0.8))
    assert ratios_at_floor(low)[1] == pytest.approx(2.8) and ratios_at_floor(high)[0] == pytest.approx(2.8)
    # the same ratios as the floors built from pass counts (optimiser step 0)
    per_pass = {"forward": 3.0, "forward_input_backward": 5.0, "forward_full_backward": 8.0, "optimizer_step": 0.0}
    erm, nuat, pgd = (pass_floor(p, per_pass) for p in ([1, 0, 1], [3, 1, 2], [11, 10, 1]))
    assert ratios_at_floor(5 / 8) == pytest.approx((nuat / erm, pgd / nuat))
    assert target_window(3.3, 3.5) == pytest.approx((6 / 6.5, 1.3))
    # exactly at the bound: 2.8 - 2 was 0.7999999999999998 in floating point, so r = 0.8, where
    # NuAT / ERM = 2.8 holds, fell outside
    assert high == 0.8 and low <= 0.8 <= high and target_window(3.3, 3.5)[1] == 1.3


def test_r_next_to_a_bound_gets_a_third_decimal():
    """r = 0.8010 read "0.80, outside the window 0.64 <= r <= 0.80"."""
    from nuat.bench.report import _window

    passes = {"forward_input_backward": {"median": 0.8010}, "forward_full_backward": {"median": 1.0}}
    line = _window({"environment": {"device": "cuda:0"}}, passes)[1]
    assert "= 0.801, outside the window 0.64 <= r <= 0.80" in line
    passes["forward_input_backward"]["median"] = 0.57
    assert "= 0.57, outside" in _window({"environment": {"device": "cuda:0"}}, passes)[1]


def test_report_places_each_variants_r_against_the_window():
    from pathlib import Path

    from nuat.bench.report import markdown
    root = Path(__file__).resolve().parents[2] / "benchmarks"
    gpu = markdown(json.loads((root / "gpu" / "h200-resnet18-b512-host-svd.json").read_text()))
    lines = [line for line in gpu.splitlines() if line.startswith("Attack step over training pass")]
    assert len(lines) == 6  # one per variant
    assert "= 0.57, outside the window 0.64 <= r <= 0.80" in lines[0]  # fp32
    assert "= 0.75, inside" in lines[1]  # eager bf16 (host-bound wall times)
    cpu = markdown(json.loads((root / "cpu" / "mnist-small-cnn-b128-epyc-avx512.json").read_text()))
    assert "window 0.92 <= r <= 1.30" in cpu and "NuAT / ERM <= 3.3 and PGD-10 / NuAT >= 3.5" in cpu


def test_host_sync_sites_name_the_calling_line(monkeypatch):
    # CUDA's sync debug mode reports each synchronisation as a warning; off a GPU the warning is
    # raised by hand, from a line of this file, which is what a site must name
    import warnings

    from nuat.bench.timing import count_host_syncs, host_sync_sites
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", lambda mode: None)

    def step():
        warnings.warn("called a synchronizing CUDA operation", UserWarning)
        warnings.warn("an unrelated warning", UserWarning)

    def two_steps():
        step()
        step()

    sites = host_sync_sites(two_steps, torch.device("cuda"))
    line = step.__code__.co_firstlineno + 1
    assert len(sites) == 2 and all(site.endswith(f"test_bench.py:{line} step") for site in sites)
    assert count_host_syncs(two_steps, torch.device("cuda")) == 2
    assert host_sync_sites(two_steps, torch.device("cpu")) is None


def test_report_lists_host_sync_sites():
    from nuat.bench.report import _host_syncs
    m = {"method": "erm", "variant": "fp32", "host_syncs_per_iteration": 0.5,
         "host_sync_sites": {"nuat/train/loop.py:160 _step": 0.5}}
    assert _host_syncs(m) == "erm/fp32 0.50 (nuat/train/loop.py:160 _step 0.50)"
    del m["host_sync_sites"]  # reports written before the sites were recorded
    assert _host_syncs(m) == "erm/fp32 0.50"


def test_report_says_the_allocated_peak_misses_cuda_graph_pools():
    """Under reduce-overhead the CUDA-allocated peak is not the step's memory (the H100 report: 3033 MiB,
    +50 in an iteration, against 4156 +1175 without graphs): the report says so under the table."""
    from pathlib import Path

    from nuat.bench.report import markdown

    root = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu"
    result = json.loads((root / "h100-resnet18-b512-reduce-overhead.json").read_text())
    text = markdown(result)
    note = next(line for line in text.splitlines() if line.startswith("Peak memory of"))
    assert "fast+reduce-overhead (CUDA graphs)" in note and "not the step's memory" in note
    assert "reserved peak" not in note  # that JSON has no reserved peaks
    for m in result["methods"]:
        m["peak_memory"] = {**m["peak_memory"], "reserved_bytes": 6 * 2**30}
    assert "nuat/fast+reduce-overhead 6144" in markdown(result)
    without = json.loads((root / "h100-resnet18-b512-reduce-overhead.json").read_text())
    without["methods"] = [m for m in without["methods"] if "reduce-overhead" not in m["variant"]]
    without["config"]["variants"] = [v for v in without["config"]["variants"] if "reduce-overhead" not in v]
    assert "Peak memory of" not in markdown(without)


def test_compile_modes_reach_torch_compile_and_mark_steps(monkeypatch):
    """``reduce-overhead`` reaches torch.compile as its mode (the default mode is left unnamed, the
    call every earlier measurement made), and only that mode marks each step for CUDA graphs."""
    from nuat.train import fastpath

    calls = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: calls.append(kw) or model)
    model = torch.nn.Linear(3, 2)
    assert fastpath.step_model(model, compile=False, mode="reduce-overhead") is model
    fastpath.step_model(model, compile=True)
    fastpath.step_model(model, compile=True, mode="reduce-overhead")
    assert calls == [{"dynamic": False}, {"dynamic": False, "mode": "reduce-overhead"}]
    with pytest.raises(ValueError, match="max-autotune"):
        fastpath.step_model(model, compile=True, mode="max-autotune")
    marks = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    fastpath.begin_step(True, "default")
    fastpath.begin_step(False, "reduce-overhead")
    assert marks == []
    fastpath.begin_step(True, "reduce-overhead")
    assert marks == [1]


def test_reduce_overhead_steps_are_marked(real_data_dir, monkeypatch):
    """Each training step and each timed pass of a reduce-overhead variant starts with the CUDA-graph
    step mark (torch.compile stubbed out: on a CPU the mode has no CUDA graphs to test)."""
    from nuat.bench.runner import _PassProbe

    modes = []  # what each torch.compile call was given: the training run's and the probe's model
    monkeypatch.setattr(torch, "compile", lambda model, **kw: modes.append(kw.get("mode")) or model)
    marks = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    cfg = BenchConfig(methods=["nuat"], data_dir=str(real_data_dir), batch_size=32, warmup=0, steps=1, trials=1)
    variant = parse_variant("reduce-overhead")
    t = _build(cfg, "nuat", variant, "unused")
    assert t.run.cfg.compile_mode == "reduce-overhead"
    assert modes == ["reduce-overhead"]  # build_run compiled the step model in the variant's mode
    _iterate(t, 3)
    assert len(marks) == 3
    probe = _PassProbe(cfg, variant, t)
    assert modes == ["reduce-overhead"] * 2  # and so did the pass probe
    probe.measure(2, record=False)
    assert len(marks) == 3 + 2 * len(probe.seconds)

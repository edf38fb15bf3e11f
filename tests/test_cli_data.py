"""``hop-data`` commands end to end, in subprocesses, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

INFO_KEYS = {"episodes", "steps", "sources", "embodiment", "joint_names", "control_hz", "num_points", "shards"}


def hop_data(*args):
    return subprocess.run([sys.executable, "-m", "hop_data.cli", *args], capture_output=True, text=True, timeout=300)


def test_simulate_then_info(tmp_path):
    store = tmp_path / "store.zarr"
    run = hop_data("simulate", "--scenes", "6", "--steps", "8", "--store", str(store), "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["episodes_written"] == 6 and summary["physics_steps_per_s"] > 0
    info = hop_data("info", str(store), "--json")
    assert info.returncode == 0, info.stderr
    facts = json.loads(info.stdout)
    assert INFO_KEYS <= facts.keys()
    assert facts["episodes"] == 6 and facts["steps"] == 48 and facts["sources"] == 1
    assert facts["embodiment"] == "xarm7_allegro_right" and len(facts["joint_names"]) == 23
    # the same run again is skipped: each source is committed once per store
    again = json.loads(hop_data("simulate", "--scenes", "6", "--steps", "8", "--store", str(store), "--json").stdout)
    assert again["skipped_already_committed"] and again["episodes_written"] == 0


def test_info_on_bad_paths_is_one_clear_line(tmp_path):
    for path, words in [(tmp_path / "missing", "does not exist"), (tmp_path, "empty directory")]:
        run = hop_data("info", str(path))
        assert run.returncode == 2
        assert words in run.stderr and str(path) in run.stderr
        assert "Traceback" not in run.stderr
    junk = tmp_path / "junk.txt"
    junk.write_text("not a store")
    run = hop_data("info", str(junk))
    assert run.returncode == 2 and "not a trajectory store" in run.stderr


def test_retarget_reports_bad_files_and_goes_on(tmp_path):
    from hop_data import synth

    good = synth.synthesize(tmp_path / "hoi", 1, 5)[0]
    bad = tmp_path / "hoi" / "broken.hoi.npz"
    bad.write_bytes(b"not an npz at all")
    store = tmp_path / "s.zarr"
    run = hop_data("retarget", str(tmp_path / "hoi"), "--store", str(store), "--attempts", "4", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["videos"] == 1 and summary["attempts"] == 4
    assert [f["source"] for f in summary["failed"]] == [str(bad)]
    assert "broken.hoi.npz" in summary["failed"][0]["reason"]
    assert {"acceptance", "attempt_frames_per_s", "median_error_m", "p95_error_m"} <= summary.keys()
    facts = json.loads(hop_data("info", str(store), "--json").stdout)
    assert facts["sources"] == 1 and facts["episodes"] == summary["accepted"]
    # a second run skips the committed video and still reports the broken file
    again = json.loads(hop_data("retarget", str(tmp_path / "hoi"), "--store", str(store), "--attempts", "4", "--json").stdout)
    assert again["skipped_already_committed"] == 1 and again["videos"] == 0 and len(again["failed"]) == 1
    assert good.exists()


def test_options_and_defaults_come_from_the_configs():
    """Every option of retarget, generate and lift is a config field, with the field's default."""
    from hop_data.cli import _build
    from hop_data.lifting.options import LiftJob, LiftOptions
    from hop_data.options import from_args, to_argv
    from hop_data.retarget.config import RetargetConfig, RetargetRunConfig
    from hop_data.service.config import GenerateConfig

    parser, _ = _build()
    assert from_args(RetargetRunConfig, parser.parse_args(["retarget", "a", "--store", "s"])) == RetargetRunConfig(["a"], "s")
    assert from_args(GenerateConfig, parser.parse_args(["generate", "a", "--store", "s"])) == GenerateConfig(["a"], "s")
    assert from_args(LiftJob, parser.parse_args(["lift", "v.mp4", "--out", "o"])) == LiftJob(["v.mp4"], "o")
    args = parser.parse_args([
        "generate", "a", "b", "--store", "s", "--attempts", "8", "--solver", "nlopt", "--error-threshold", "0.02",
        "--seed", "3", "--max-failures", "2", "--writer-prefix", "p", "--storage-options", '{"anon": true}',
        "--lift-runtime-env", '{"pip": ["x"]}', "--json",
    ])  # fmt: skip
    config = from_args(GenerateConfig, args, progress=False)
    assert config.retarget == RetargetConfig(attempts=8, solver="nlopt", error_threshold=0.02)
    assert (config.inputs, config.seed, config.max_failures, config.writer_prefix) == (["a", "b"], 3, 2, "p")
    assert config.storage_options == {"anon": True} and config.lift_runtime_env == {"pip": ["x"]}
    assert not config.progress and args.json
    assert from_args(GenerateConfig, parser.parse_args(["generate", "a", "b", *to_argv(config)]), progress=False) == config
    # the lifting worker gets back exactly the options that differ from the defaults
    options = LiftOptions(intrinsics="900,900,640,360", side="left", max_frames=12)
    assert to_argv(options) == ["--intrinsics", "900,900,640,360", "--side", "left", "--max-frames", "12"]
    assert from_args(LiftJob, parser.parse_args(["lift", "v", "--out", "o", *to_argv(options)])).options == options


def test_help_shows_the_config_defaults_and_bad_values_are_usage_errors(tmp_path):
    from hop_data.retarget.config import RetargetConfig
    from hop_data.service.config import GenerateConfig

    text = " ".join(hop_data("generate", "--help").stdout.split())
    assert f"(default: {RetargetConfig.attempts})" in text and f"(default: {GenerateConfig.max_failures})" in text
    for args, words in [
        (["retarget", "x.hoi.npz", "--attempts", "0"], "attempts must be >= 1"),
        (["generate", "x.hoi.npz", "--max-failures", "0"], "max_failures must be >= 1"),
        (["generate", "x.hoi.npz", "--storage-options", "{bad"], "invalid JSON value"),
    ]:
        run = hop_data(*args, "--store", str(tmp_path / "s.zarr"))
        assert run.returncode == 2 and words in run.stderr and "Traceback" not in run.stderr, run.stderr
        assert not (tmp_path / "s.zarr").exists()


def test_no_library_module_imports_a_command_line_module():
    """Only entry points (cli modules, ``__main__``, the lifting worker) import cli modules."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    entry_points = {"cli.py", "__main__.py", "worker.py"}
    offenders = []
    for path in sorted((root / "hop_data").rglob("*.py")):
        if path.name in entry_points:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            if any(n.split(".")[-1] in ("cli", "worker") for n in names):
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not offenders, offenders

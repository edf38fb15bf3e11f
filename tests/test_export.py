"""Export contract: TorchScript parity with the eager model, a torch-only load,
the robot-side runner's refusals, and checkpoint loading that names bad keys."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from hop_robot.embodiment import spec
from hop_robot.policy import EXPECTED_NUM_POINTS, ExportedPolicy, PolicyMismatchError
from hop_train.export import IncompatibleCheckpointError, export_policy, load_state_dict_safely
from hop_train.model import HopPolicy

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

P = EXPECTED_NUM_POINTS  # the runner checks the embodiment's point count


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = HopPolicy(num_layers=2)
    with torch.no_grad():  # a non-trivial action head so that unscaling is exercised
        m.action_head.weight.normal_(0.0, 0.05)
    return m.eval()


@pytest.fixture(scope="module")
def policy_file(model, tmp_path_factory):
    return export_policy(model, tmp_path_factory.mktemp("export") / "policy.pt")


def random_window(b, t, seed=0):
    g = torch.Generator().manual_seed(seed)
    lower = torch.tensor(spec.JOINT_LOWER, dtype=torch.float32)
    upper = torch.tensor(spec.JOINT_UPPER, dtype=torch.float32)
    proprio = lower + torch.rand(b, t, spec.NUM_JOINTS, generator=g) * (upper - lower)
    points = torch.rand(b, t, P, 3, generator=g) * 0.3 + torch.tensor([0.5, -0.15, 0.0])
    return proprio, points


def eager_next_targets(model, proprio, points, mask):
    scaled = torch.from_numpy(spec.scale(proprio.double().numpy())).float()
    with torch.no_grad():
        actions = model(scaled, points, mask)[:, -1]
    return torch.from_numpy(spec.unscale(actions.double().numpy())).float()


def test_exported_matches_eager(model, policy_file):
    exported = torch.jit.load(policy_file)
    for t in (16, 9, 1):
        proprio, points = random_window(4, t, seed=t)
        mask = torch.ones(4, t, dtype=torch.bool)
        mask[1, : t - 1] = False  # only the current step valid
        mask[2, : t // 2] = False
        with torch.inference_mode():
            out = exported(proprio, points, mask)
            split = exported.act_from_tokens(proprio, exported.encode_points(points), mask)
        expected = eager_next_targets(model, proprio, points, mask)
        assert out.shape == (4, spec.NUM_JOINTS)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(split, out, atol=1e-6, rtol=0)


def test_exported_rejects_bad_windows(policy_file):
    exported = torch.jit.load(policy_file)
    proprio, points = random_window(1, 17)
    with pytest.raises(torch.jit.Error, match="context"):
        exported(proprio, points, torch.ones(1, 17, dtype=torch.bool))
    proprio, points = random_window(1, 4)
    with pytest.raises(torch.jit.Error, match="last step"):
        exported(proprio, points, torch.tensor([[True, True, True, False]]))
    with pytest.raises(torch.jit.Error, match=r"\(\.\.\., 100, 3\)"):
        exported(proprio, points[:, :, :50], torch.ones(1, 4, dtype=torch.bool))


def test_exported_file_loads_with_torch_alone(policy_file, tmp_path):
    code = textwrap.dedent(
        f"""
        import sys, torch
        m = torch.jit.load({str(policy_file)!r})
        assert m.format_version == 1 and m.embodiment == {spec.EMBODIMENT_NAME!r}
        assert list(m.joint_names) == {list(spec.JOINT_NAMES)!r}
        assert len(m.joint_lower) == len(m.joint_upper) == 23
        assert m.control_hz == {spec.CONTROL_HZ} and m.context == 16 and m.num_points == {P}
        out = m(torch.zeros(1, 3, 23), torch.rand(1, 3, {P}, 3), torch.ones(1, 3, dtype=torch.bool))
        assert out.shape == (1, 23) and bool(torch.isfinite(out).all())
        assert not [k for k in sys.modules if k.startswith("hop")], "hop modules imported"
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


def test_robot_runner_imports_no_training_stack():
    code = (
        "import sys, hop_robot.policy; "
        "bad = [m for m in ('lightning', 'pytorch_lightning', 'zarr', 'ray', 'hop_train', 'hop_data') if m in sys.modules]; "
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_runner_matches_exported_and_caches_exactly(model, policy_file):
    cached = ExportedPolicy(policy_file, num_threads=None)
    uncached = ExportedPolicy(policy_file, num_threads=None, cache_point_tokens=False, optimize=False)
    assert cached.context == 16 and cached.num_points == P and cached.control_hz == spec.CONTROL_HZ
    proprio, points = random_window(1, 24, seed=3)
    for k in range(1, 25):  # a rolling history, growing to the context then sliding
        t0 = max(0, k - 16)
        q, pc = proprio[0, t0:k].numpy(), points[0, t0:k].numpy()
        out = cached(q, pc)
        assert out.shape == (spec.NUM_JOINTS,) and out.dtype == np.float64
        np.testing.assert_allclose(out, uncached(q, pc), atol=1e-5, rtol=0)
    expected = eager_next_targets(model, proprio[:, 8:], points[:, 8:], torch.ones(1, 16, dtype=torch.bool))
    np.testing.assert_allclose(out, expected[0].numpy(), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="T <= 16"):
        cached(np.zeros((17, 23)), np.zeros((17, P, 3)))
    with pytest.raises(ValueError, match="points_hist"):
        cached(np.zeros((4, 23)), np.zeros((4, P - 1, 3)))


@pytest.mark.parametrize(
    "override, named",
    [
        ({"joint_names": [f"j{i}" for i in range(23)]}, "joint names differ"),
        ({"control_hz": 30}, "control rate 30 Hz, expected 20 Hz"),
        ({"num_points": 64}, "num_points 64 != 100"),
        ({"embodiment": "ur5_shadow"}, "embodiment"),
        ({"joint_lower": [-1.0] * 23}, "joint_lower differ"),
    ],
)
def test_runner_refuses_mismatched_metadata(override, named, tmp_path):
    torch.manual_seed(0)
    m = HopPolicy(num_layers=1, num_points=override.get("num_points", P))
    path = export_policy(m, tmp_path / "policy.pt", **override)
    with pytest.raises(PolicyMismatchError, match=named):
        ExportedPolicy(path, num_threads=None)


def test_runner_refuses_non_finite_output(tmp_path):
    torch.manual_seed(0)
    m = HopPolicy(num_layers=1)
    with torch.no_grad():
        m.action_head.bias[3] = float("nan")
    path = export_policy(m, tmp_path / "nan.pt", check=False)
    policy = ExportedPolicy(path, num_threads=None)
    with pytest.raises(FloatingPointError, match="joint4"):
        policy(np.zeros((2, 23)), np.random.rand(2, P, 3))


def test_runner_refuses_a_file_that_is_not_a_policy(tmp_path):
    path = tmp_path / "other.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))
    with pytest.raises(PolicyMismatchError, match="not an exported HOP policy"):
        ExportedPolicy(path, num_threads=None)


def test_load_state_dict_safely(model, tmp_path):
    # Plain state dict round trip.
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    fresh = load_state_dict_safely(HopPolicy(num_layers=2), tmp_path / "plain.pt")
    torch.testing.assert_close(fresh.action_head.weight, model.action_head.weight)
    # Lightning-style checkpoint: {"state_dict": {"model.<key>": ...}} plus other modules' keys.
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state["critic.weight"] = torch.zeros(1, 192)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "lightning.ckpt")
    fresh = load_state_dict_safely(HopPolicy(num_layers=2), tmp_path / "lightning.ckpt")
    torch.testing.assert_close(fresh.blocks[1].fc.weight, model.blocks[1].fc.weight)

    # Incompatible: 3 layers (missing block 2), width 128 (shape mismatches), an extra key.
    bad = HopPolicy(num_layers=1).state_dict()
    bad["action_head.weight"] = torch.zeros(23, 128)
    bad["extra_head.bias"] = torch.zeros(4)
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(IncompatibleCheckpointError) as info:
        load_state_dict_safely(HopPolicy(num_layers=2), tmp_path / "bad.pt")
    msg = str(info.value)
    assert "missing" in msg and "blocks.1.attn.qkv.weight" in msg
    assert "unexpected (1): extra_head.bias" in msg
    assert "action_head.weight: checkpoint (23, 128) vs model (23, 192)" in msg


def test_load_state_dict_safely_refuses_pickled_code(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(1)}, "cfg": _NotATensor()}, tmp_path / "code.ckpt")
    with pytest.raises(IncompatibleCheckpointError, match="weights_only"):
        load_state_dict_safely(HopPolicy(num_layers=1), tmp_path / "code.ckpt")


class _NotATensor:
    pass


# ----------------------------------------------------------------- relative positions
@pytest.fixture(scope="module")
def relative_model():
    torch.manual_seed(0)
    m = HopPolicy(width=32, num_layers=2, num_heads=2, context=4, positions="relative")
    with torch.no_grad():  # weights that make distant steps matter
        for p in m.parameters():
            p.normal_(0.0, 0.2)
    return m.eval()


@pytest.fixture(scope="module")
def relative_file(relative_model, tmp_path_factory):
    return export_policy(relative_model, tmp_path_factory.mktemp("relative") / "policy.pt")


def eager_episode_targets(model, proprio, points):
    """Next targets (rad) for every step of one episode (B, S, ...) by the banded forward."""
    scaled = torch.from_numpy(spec.scale(proprio.double().numpy())).float()
    with torch.no_grad():
        actions = model(scaled, points)
    return torch.from_numpy(spec.unscale(actions.double().numpy())).float()


def test_relative_export_records_the_variant_and_steps_exactly(relative_model, relative_file):
    """The file says ``relative``, its ``context`` is the receptive field (band 4,
    2 layers: 7 steps), and ``step`` follows the banded forward over an episode,
    also through the robot runner's frozen, optimised module."""
    exported = torch.jit.load(relative_file)
    assert exported.positions == "relative" and exported.context == relative_model.receptive_field == 7
    runner = ExportedPolicy(relative_file, num_threads=None)
    assert runner.positions == "relative" and runner.context == 7
    proprio, points = random_window(2, 12, seed=5)
    expected = eager_episode_targets(relative_model, proprio, points)
    with torch.inference_mode():
        for module in (exported, runner.module):
            tokens = module.encode_points(points)
            cache = module.init_cache(2)
            reset = torch.tensor([True, True])
            for k in range(12):
                out = module.step(cache, proprio[:, k], tokens[:, k], reset if k == 0 else ~reset)
                torch.testing.assert_close(out, expected[:, k], atol=1e-4, rtol=0)
    # The runner's window of `context` steps is exact once the history is that long.
    for k in range(1, 13):
        t0 = max(0, k - 7)
        out = runner(proprio[0, t0:k].numpy(), points[0, t0:k].numpy())
        np.testing.assert_allclose(out, expected[0, k - 1].numpy(), atol=1e-4, rtol=0)
    assert torch.jit.load(export_policy(relative_model, relative_file + ".4", context=4)).context == 7  # the band = the default


def test_batched_policy_steps_a_relative_policy_with_resets(relative_model, relative_file):
    """``hop-train evaluate``'s BatchedPolicy uses the cached step for a relative
    file: with envs restarting at different steps, each env's actions are the
    banded forward over its own episode."""
    from hop_train.evaluate import BatchedPolicy

    policy = BatchedPolicy(relative_file, num_envs=3)
    assert policy.incremental
    proprio, points = random_window(3, 10, seed=6)
    restarted = np.zeros((10, 3), dtype=bool)
    restarted[0] = True
    restarted[4, 1] = restarted[7, 2] = True
    scaled = spec.scale(proprio.double().numpy())
    got = np.stack([policy({"proprio": scaled[:, k], "points": points[:, k].numpy()}, restarted[k]) for k in range(10)], 1)
    for i, first in ((0, 0), (1, 4), (2, 7)):
        expected = eager_episode_targets(relative_model, proprio[i : i + 1, first:], points[i : i + 1, first:])[0]
        expected = np.clip(spec.scale(expected.double().numpy()), -1, 1)
        np.testing.assert_allclose(got[i, first:], expected, atol=1e-4, rtol=0)

"""``hop-robot run`` end to end on the simulated robot, on a "robot computer"
(a subprocess in which Ray, Lightning, zarr, hop_data, hop_train and the hardware
SDKs cannot be imported), and its refusals before anything moves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from hop_robot.embodiment import spec

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

BLOCKED = ["ray", "lightning", "pytorch_lightning", "lightning_fabric", "zarr", "numcodecs", "hop_data", "hop_train",
           "numba", "xarm", "can", "pyrealsense2"]  # fmt: skip
ROBOT_MODULES = [
    "hop_robot.cli", "hop_robot.loop", "hop_robot.safety", "hop_robot.record", "hop_robot.policy", "hop_robot.sim",
    "hop_robot.drivers.base", "hop_robot.drivers.sim", "hop_robot.drivers.servo", "hop_robot.drivers.xarm",
    "hop_robot.drivers.allegro", "hop_robot.drivers.composite", "hop_robot.cameras.base", "hop_robot.cameras.sim",
    "hop_robot.cameras.replay", "hop_robot.cameras.realsense", "hop_robot.cameras.pointcloud",
]  # fmt: skip

ROBOT_COMPUTER = textwrap.dedent(
    """
    import importlib, importlib.abc, json, sys
    BLOCKED = set(json.loads(sys.argv[1]))

    class RobotComputer(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"not installed on a robot computer: {name}")
            return None

    sys.meta_path.insert(0, RobotComputer())
    for name in json.loads(sys.argv[2]):
        importlib.import_module(name)
    from hop_robot.cli import main
    code = main(sys.argv[3:])
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not leaked, leaked
    sys.exit(code)
    """
)


@pytest.fixture(scope="module")
def policies(tmp_path_factory):
    from hop_train.export import export_policy
    from hop_train.model import HopPolicy

    torch.manual_seed(0)
    model = HopPolicy(num_layers=1, width=32, num_heads=4).eval()
    with torch.no_grad():  # small, smooth actions around the limits' middle
        model.action_head.weight.normal_(0.0, 0.01)
    root = tmp_path_factory.mktemp("policies")
    good = export_policy(model, root / "policy.pt")
    other_rate = export_policy(model, root / "policy_10hz.pt", control_hz=10)
    return Path(good), Path(other_rate)


def test_run_on_a_robot_computer_with_the_sim_robot(policies, tmp_path):
    record = tmp_path / "episode.npz"
    env = dict(os.environ, MUJOCO_GL="osmesa")
    args = ["run", "--policy", str(policies[0]), "--robot", "sim", "--camera", "sim", "--duration", "1.5",
            "--record", str(record), "--json", "--max-misses", "20"]  # plumbing here; timing is bench/robot_loop.py's  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", ROBOT_COMPUTER, json.dumps(BLOCKED), json.dumps(ROBOT_MODULES), *args],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    n = summary["steps"]
    assert summary["reason"] == "duration reached" and n + summary["misses"]["overrun"] == 30
    assert summary["period_ms"]["p50"] == pytest.approx(50.0, abs=2.0) and summary["commands_sent"] == n
    assert set(summary["policy_latency_ms"]) == {"p50", "p99", "max"} and summary["misses"]["total"] <= 15
    from hop_robot.record import load_recording

    data = load_recording(record)
    assert data["proprio"].shape == (n, 23) and data["object_pc"].shape == (n, spec.NUM_POINTS, 3)
    assert data["meta"]["robot"] == "sim" and data["meta"]["policy_metadata"]["control_hz"] == 20
    assert np.all(data["object_pc"][:, :, 2] > 0.0)  # the can, above the table


def test_mismatched_policy_is_refused_before_anything_connects(policies, monkeypatch, capsys):
    from hop_robot import cli
    from hop_robot.drivers.xarm import XArmDriver

    def must_not_connect(self):
        raise AssertionError("connected to the robot despite a refused policy")

    monkeypatch.setattr(XArmDriver, "_connect", must_not_connect)
    code = cli.main(["run", "--policy", str(policies[1]), "--robot", "xarm", "--xarm-ip", "10.0.0.9"])
    err = capsys.readouterr().err
    assert code == 2 and "control rate 10 Hz, expected 20 Hz" in err and "nothing was sent" in err
    assert cli.main(["run", "--policy", str(policies[0]), "--robot", "xarm", "--xarm-ip", "10.0.0.9", "--hz", "30"]) == 2
    assert "differs from the policy's control rate" in capsys.readouterr().err
    assert cli.main(["run", "--policy", str(policies[0]), "--robot", "xarm"]) == 2
    assert "--xarm-ip" in capsys.readouterr().err
    assert cli.main(["run", "--policy", str(policies[0]), "--robot", "sim", "--workspace", "1", "0", "0", "1", "0", "1"]) == 2
    assert cli.main(["run", "--policy", str(policies[0]), "--robot", "xarm", "--xarm-ip", "10.0.0.9",
                     "--camera", "sim"]) == 2  # fmt: skip
    assert "needs --robot sim" in capsys.readouterr().err

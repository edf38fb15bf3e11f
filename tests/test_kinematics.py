"""Batched kinematics against MuJoCo's own mj_kinematics and mj_jacSite."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from hop_robot.embodiment import spec
from hop_robot.embodiment.model import load_model
from hop_robot.kinematics import RobotKinematics


@pytest.fixture(scope="module")
def model():
    return load_model()


def random_q(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(spec.JOINT_LOWER, spec.JOINT_UPPER, size=(n, spec.NUM_JOINTS))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_sites_and_jacobians_match_mujoco(model, backend):
    pytest.importorskip(backend)
    kin = RobotKinematics(model, backend=backend)
    q = random_q(16)
    x, jac = kin.sites_and_jacobians(q)
    np.testing.assert_allclose(kin.sites(q), x, atol=1e-12)
    data = mujoco.MjData(model)
    qadr = [model.jnt_qposadr[model.joint(n).id] for n in spec.JOINT_NAMES]
    dadr = [model.jnt_dofadr[model.joint(n).id] for n in spec.JOINT_NAMES]
    jacp = np.zeros((3, model.nv))
    for i in range(len(q)):
        data.qpos[qadr] = q[i]
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        for s, name in enumerate(spec.KEYPOINT_SITES):
            sid = model.site(name).id
            np.testing.assert_allclose(x[i, s], data.site_xpos[sid], atol=1e-10)
            mujoco.mj_jacSite(model, data, jacp, None, sid)
            np.testing.assert_allclose(jac[i, s], jacp[:, dadr], atol=1e-10)


def test_other_sites_and_bad_shapes(model):
    kin = RobotKinematics(model, sites=("kp_palm",))
    assert kin.sites(random_q(3)).shape == (3, 1, 3)
    with pytest.raises(ValueError, match=r"q must be \(N, 23\)"):
        kin.sites(np.zeros((3, 22)))
    with pytest.raises(ValueError, match="backend"):
        RobotKinematics(model, backend="cuda")

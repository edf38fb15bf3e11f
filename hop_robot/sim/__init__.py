"""The one simulation core: scene building, the control law, the simulator
protocol and its backends. Retargeting (``hop_data.retarget``), the simulated
robot (``hop_robot.drivers.sim``) and the task environments
(``hop_train.envs``) all run on it. Needs numpy and mujoco only."""

from .control import RateLimitedTargets
from .protocol import Observation, SceneParams, Simulator, backends, make_simulator, register_backend
from .scene import CompiledScene, SceneConfig, SceneError, build_scene, compile_scene, object_cloud

__all__ = [
    "CompiledScene",
    "Observation",
    "RateLimitedTargets",
    "SceneConfig",
    "SceneError",
    "SceneParams",
    "Simulator",
    "backends",
    "build_scene",
    "compile_scene",
    "make_simulator",
    "object_cloud",
    "register_backend",
]

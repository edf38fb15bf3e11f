"""The HOP tasks as Gymnasium environments, registered on import:

    hop/GraspLift-v0   hop/GraspThrow-v0   hop/OpenCabinet-v0

``gymnasium.make(id)`` gives one environment, ``gymnasium.make_vec(id,
num_envs=N)`` the native batched one (all N MuJoCo worlds stepped together).
Options (both): ``objects="train"|"heldout"|names``, ``cloud="surface"|"camera"``,
``perturb=True``, and any other ``TaskConfig`` field.
"""

from __future__ import annotations

import gymnasium

from .base import TaskConfig, TaskEnv, TaskVectorEnv
from .cabinet import OpenCabinetEnv, OpenCabinetVectorEnv
from .grasp import GraspLiftEnv, GraspLiftVectorEnv, GraspThrowEnv, GraspThrowVectorEnv
from .objects import HELDOUT_OBJECTS, TRAIN_OBJECTS, TaskObject, object_set

__all__ = [
    "HELDOUT_OBJECTS", "TASKS", "TRAIN_OBJECTS", "TaskConfig", "TaskEnv", "TaskObject", "TaskVectorEnv",
    "make_vector", "object_set", "task_id",
]  # fmt: skip

TASKS: dict[str, type[TaskVectorEnv]] = {
    "GraspLift-v0": GraspLiftVectorEnv,
    "GraspThrow-v0": GraspThrowVectorEnv,
    "OpenCabinet-v0": OpenCabinetVectorEnv,
}
_SINGLE = {"GraspLift-v0": GraspLiftEnv, "GraspThrow-v0": GraspThrowEnv, "OpenCabinet-v0": OpenCabinetEnv}


def task_id(name: str) -> str:
    """``GraspLift-v0`` or ``hop/GraspLift-v0`` -> the registered ``hop/GraspLift-v0``; unknown names refused."""
    short = name.split("/", 1)[1] if name.startswith("hop/") else name
    if short not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks: {sorted(TASKS)}")
    return f"hop/{short}"


def make_vector(name: str, num_envs: int, **options) -> TaskVectorEnv:
    """The batched env of task ``name`` (what ``gymnasium.make_vec`` returns)."""
    return TASKS[task_id(name).split("/", 1)[1]](num_envs, **options)


for _name, _vector in TASKS.items():
    _id = f"hop/{_name}"
    if _id not in gymnasium.registry:
        gymnasium.register(
            id=_id,
            entry_point=f"{_SINGLE[_name].__module__}:{_SINGLE[_name].__name__}",
            vector_entry_point=f"{_vector.__module__}:{_vector.__name__}",
            disable_env_checker=False,
        )

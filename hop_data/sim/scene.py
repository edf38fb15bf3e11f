"""Scene construction for data generation.

The scene composition (robot + floor + table + obstacle slots + object) lives
in ``hop_robot.scene``, the one place for it: the simulated robot of
``hop-robot run`` builds the same scene with a dynamic object. This module
re-exports it under the names data generation has always used.
"""

from __future__ import annotations

from hop_robot.scene import (  # noqa: F401  (re-exported)
    _ALL_BITS,
    _PARKED_Z,
    SceneConfig,
    SceneError,
    SceneIndex,
    add_lookat_camera,
    build_scene_spec,
    compile_scene,
    index_scene,
    object_cloud,
    table_geom_pose,
)

__all__ = [
    "SceneConfig",
    "SceneError",
    "SceneIndex",
    "add_lookat_camera",
    "build_scene_spec",
    "compile_scene",
    "index_scene",
    "object_cloud",
    "table_geom_pose",
]

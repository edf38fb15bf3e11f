"""The lifting environment: MediaPipe needs numpy < 2, the main environment
numpy >= 2, so lifting runs in its own interpreter (``.venv-lift``, or
``$HOP_LIFT_PYTHON``) as ``hop_data.lifting.worker``; this module finds that
interpreter and builds the worker's environment and command line."""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

from hop_data.inputs import VIDEO_SUFFIXES, expand_inputs
from hop_data.options import to_argv

from .options import LiftOptions

__all__ = ["DEFAULT_LIFT_VENV", "LIFT_PYTHON_ENV", "expand_videos", "lift_python", "lifting_available", "worker_command", "worker_env"]

LIFT_PYTHON_ENV = "HOP_LIFT_PYTHON"  # interpreter of the lifting environment
DEFAULT_LIFT_VENV = ".venv-lift"  # beside the source tree (make lift-env)


def lifting_available() -> bool:
    """True when this interpreter can lift in-process (MediaPipe and OpenCV importable)."""
    return importlib.util.find_spec("mediapipe") is not None and importlib.util.find_spec("cv2") is not None


def lift_python() -> Path:
    """The lifting environment's interpreter: ``$HOP_LIFT_PYTHON``, else
    ``.venv-lift/bin/python`` beside the source tree. FileNotFoundError says
    how to create it."""
    env = os.environ.get(LIFT_PYTHON_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise FileNotFoundError(f"${LIFT_PYTHON_ENV} = {env} is not a file")
        return path
    path = Path(__file__).resolve().parents[2] / DEFAULT_LIFT_VENV / "bin" / "python"
    if not path.is_file():
        raise FileNotFoundError(
            f"the lifting environment is missing ({path}): run `make lift-env` in the source tree "
            f"or set ${LIFT_PYTHON_ENV} to a Python with mediapipe==0.10.21 and numpy<2"
        )
    return path


def worker_env() -> dict[str, str]:
    """Environment for the worker: this source tree (only hop_data and
    hop_robot) first on PYTHONPATH, nothing of the main environment's site-packages."""
    root = Path(__file__).resolve().parents[2]
    if root.name in ("site-packages", "dist-packages"):  # an installed copy: expose only our packages
        link_root = Path(tempfile.gettempdir()) / f"hop-lift-path-{os.getuid()}"
        link_root.mkdir(exist_ok=True)
        for pkg in ("hop_data", "hop_robot"):
            link = link_root / pkg
            if not link.exists():
                link.symlink_to(root / pkg)
        root = link_root
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def worker_command(videos: list[str], out_dir: str, options: LiftOptions, results: str | None = None, quiet: bool = False) -> list[str]:
    """The command line running ``hop_data.lifting.worker`` in the lifting environment."""
    cmd = [str(lift_python()), "-m", "hop_data.lifting.worker", "--out", str(out_dir), *to_argv(options)]
    if results:
        cmd += ["--results", results]
    if quiet:
        cmd.append("--quiet")
    return cmd + ["--", *videos]


def expand_videos(items: list[str]) -> list[str]:
    """Files, directories (their video files, recursively) and glob patterns ->
    sorted unique paths; an item matching nothing is kept so it is reported."""
    return expand_inputs(items, VIDEO_SUFFIXES)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `hop-data lift` or `python -m hop_data.lifting.worker`")

"""Test-session settings that must precede any import of MuJoCo."""

import os

# Offscreen rendering without a display: MuJoCo chooses its GL backend when it
# is first imported, so this has to be set before any test imports it.
os.environ.setdefault("MUJOCO_GL", "osmesa")

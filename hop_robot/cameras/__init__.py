"""Cameras that give the policy its object point cloud (see ``base.Camera``)."""

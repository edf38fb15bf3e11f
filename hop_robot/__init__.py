"""hop_robot: the xArm7 + Allegro embodiment, its drivers and the 20 Hz policy loop.

Installs without Ray, Lightning or zarr: a robot computer needs only this
package and an exported policy file.
"""

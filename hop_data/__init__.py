"""hop_data: hand-object trajectories, simulation, retargeting, the trajectory store and the Ray service."""

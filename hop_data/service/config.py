"""``GenerateConfig``: every option of a data-generation run, with its default
and meaning, once. ``hop-data generate`` / ``python -m hop_data.service`` are
built from it (``hop_data.options``). Light: no Ray here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hop_data.options import option, parse_json
from hop_data.retarget.config import RetargetJob


def runtime_env(text: str) -> dict[str, Any]:
    """A Ray runtime env from a YAML/JSON file or a JSON string."""
    from pathlib import Path

    if Path(text).is_file():
        import yaml

        return yaml.safe_load(Path(text).read_text())
    return json.loads(text)


@dataclass
class GenerateConfig(RetargetJob):
    """One data-generation run (inputs, store, ``retarget: RetargetConfig`` and
    seed as in ``RetargetJob``). Defaults are the paper's where it gives them."""

    inputs: list[str] = option(help="*.hoi.npz files, videos, directories or glob patterns", positional=True, nargs="*")
    store: str = option(help="store path or fsspec URL (a shared path or object storage on a cluster; created if missing)")
    manifest: str | None = option(None, "text file with one input per line (relative to the file; '#' comments)")
    actors: int = option(0, "simulator actors (0: as many as the cluster's CPUs (GPUs) hold)")
    threads: int = option(1, "simulator threads per actor (its num_cpus)")
    gpus_per_actor: float = option(0.0, "GPU fraction per actor (a GPU simulator backend)")
    max_in_flight: int = option(0, "videos handed out at once (0: one per actor)")
    max_failures: int = option(3, "give a video up after this many worker deaths or errors")
    placement_timeout_s: float = option(
        600.0, "stop (status 3) when no simulator actor has been up for this long: nodes lost or too small"
    )
    writer_prefix: str = option("svc", "actor shards are named <prefix>-<actor id>")
    storage_options: dict[str, Any] | None = option(
        None, "fsspec options of the store, as JSON (never credentials)", parse=parse_json, metavar="JSON"
    )
    address: str | None = option(None, "Ray cluster to join (default: RAY_ADDRESS; unset: an embedded local Ray)")
    num_cpus: int | None = option(None, "CPUs of the embedded Ray (default: this machine's cores)")
    lift_python: str | None = option(
        None, "python of the lifting environment (default: $HOP_LIFT_PYTHON, else .venv-lift beside the sources: make lift-env)"
    )
    lift_runtime_env: dict[str, Any] | None = option(
        None, "Ray runtime env of the lifting tasks: a YAML/JSON file or a JSON string", parse=runtime_env, metavar="FILE|JSON"
    )
    lift_dir: str | None = option(None, "directory for lifted .hoi.npz (default: <store>-lifted for a local store)")
    lift_cpus: float = option(1.0, "CPUs of one lifting task")
    lift_in_flight: int = 0  # lifting tasks at once; 0: a quarter of the CPUs (at least 1)
    lift_options: dict[str, Any] = field(default_factory=dict)  # keyword options of lift_video
    max_actor_replacements: int = 0  # actors created anew when one cannot come back; 0: as many as actors
    repair_orphans: bool = True  # repair shards left by writers of a dead driver (local stores)
    progress: bool = True  # progress bar on stderr
    messages: bool = True  # a line on stderr per restart, retry, give-up
    log_to_driver: bool = True  # Ray forwards the workers' output here (to stderr with --json: stdout stays JSON)

    def __post_init__(self) -> None:
        for name in ("threads", "max_failures"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.placement_timeout_s <= 0:
            raise ValueError(f"placement_timeout_s must be > 0, got {self.placement_timeout_s}")

"""One run of the service in this process, as the command does it: the summary
on stdout (alone, with ``--json``), errors as one line on stderr, an exit
status (``hop_data.service.errors``). ``hop-data generate`` calls it directly
(a cluster) or in the supervised driver process (the embedded Ray,
``supervisor.py``). Nothing heavy is imported until it runs.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Callable, TextIO

if TYPE_CHECKING:
    from hop_data.service.config import GenerateConfig


def run_driver(config: GenerateConfig, as_json: bool, on_ray_up: Callable[[], object] | None = None) -> int:
    """Run the service in this process: the summary on stdout, errors as one
    line on stderr, an exit status (``hop_data.service.errors``). ``on_ray_up``
    is called once Ray runs (the supervisor's cue)."""
    from hop_data.report import exit_status, print_summary
    from hop_data.service.driver import ServiceError, generate
    from hop_data.service.errors import EXIT_INTERRUPTED, lost_message
    from hop_data.store import StoreError

    out = json_stdout(as_json)
    try:
        summary = generate(config, on_ray_up=on_ray_up)
    except ServiceError as exc:  # RayLostError included: what died and how to resume
        print(f"hop-data generate: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except (StoreError, FileNotFoundError) as exc:
        print(f"hop-data generate: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hop-data generate: {lost_message('interrupted', config.store)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    with contextlib.redirect_stdout(out):
        print_summary(summary, as_json)
    out.flush()
    return exit_status(summary)


def json_stdout(as_json: bool) -> TextIO:
    """Where the summary goes. With ``--json``, stdout holds the summary alone:
    file descriptor 1 then points to stderr for the rest of this process (Ray's
    forwarded worker lines, C++ logs, a stray print, of this process and every
    process it starts, during the run and after it, when Ray's threads still
    print), and the summary goes to a copy of the original stdout."""
    if not as_json:
        return sys.stdout
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return out

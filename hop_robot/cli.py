"""``hop-robot``: the robot-side command line.

Subcommands are registered in ``SUBCOMMANDS`` (name -> (help, add_arguments, run)).

    hop-robot describe [--json] [--model PATH]
    hop-robot run --policy policy.pt --robot sim|xarm [--camera sim|sim:truth|realsense|replay:FILE]
                  [--hz 20] [--duration S] [--dry-run] [--record FILE] [--json] ...

``run`` ends with one exit status per cause (``RUN_EXIT_STATUSES``, printed by
``hop-robot run --help``; docs/robot.md has the details). Whatever the cause,
the robot is stopped and released, the recording written and the summary
printed first; the process then ends with that status, never by a signal: a
policy call still running (it cannot be interrupted) gets ``policy_grace`` s,
then the process ends with ``os._exit`` (a normal interpreter exit with a
thread inside TorchScript aborts: "terminate called without an active
exception", SIGABRT).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence

from hop_robot.embodiment import spec as S


# ---------------------------------------------------------------- describe
def _describe_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--model",
        metavar="PATH",
        default=None,
        help=f"MJCF model to describe (default: ${S.MODEL_ENV_VAR}, else the built-in model)",
    )


def _describe_table(info: dict) -> str:
    lines = [
        f"embodiment  {info['name']}",
        f"model       {info['model_path']}",
        f"control     {info['control_hz']} Hz policy, {info['sim_hz']} Hz PD "
        f"({info['substeps']} substeps), arm target step <= "
        f"{info['arm_max_step_per_substep']:.5f} rad/substep",
    ]
    for part in ("arm", "hand"):
        g = info["gains"][part]
        lines.append(f"gains {part:<5} kp {g['kp']:g}  kd {g['kd']:g}  effort {g['effort']:g} N·m")
    lines.append("")
    lines.append(f"{'#':>2}  {'joint':<16} {'lower':>9} {'upper':>9} {'default':>9}")
    for i, name in enumerate(info["joint_names"]):
        lines.append(
            f"{i:>2}  {name:<16} {info['joint_lower'][i]:>9.4f} {info['joint_upper'][i]:>9.4f} "
            f"{info['default_pose'][i]:>9.4f}"
        )
    lines.append("")
    lines.append(f"{'#':>2}  {'keypoint site':<16} human joint")
    for i, (site, human) in enumerate(zip(info["keypoint_sites"], info["human_keypoint_index"])):
        lines.append(f"{i:>2}  {site:<16} {human}")
    return "\n".join(lines)


def _describe(args: argparse.Namespace) -> int:
    try:
        info = S.EMBODIMENT.to_dict(args.model)
        from hop_robot.embodiment.model import load_spec

        load_spec(args.model)  # refuse a model that lacks the spec's joints or sites
    except (FileNotFoundError, ValueError) as exc:
        print(f"hop-robot describe: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(_describe_table(info))
    return 0


# ---------------------------------------------------------------- run
def _run_args(parser: argparse.ArgumentParser) -> None:
    from hop_robot.drivers.xarm import XArmConfig
    from hop_robot.loop import LoopConfig
    from hop_robot.safety import SafetyConfig

    safety = SafetyConfig()
    parser.add_argument("--policy", required=True, metavar="FILE", help="exported policy (hop-train export)")
    parser.add_argument("--robot", required=True, choices=["sim", "xarm"],
                        help="sim: MuJoCo workcell; xarm: xArm7 + Allegro hand")
    parser.add_argument("--camera", default=None, metavar="KIND",
                        help="sim | sim:truth | realsense | replay:FILE (default: sim for --robot sim, realsense for xarm)")
    parser.add_argument("--hz", type=float, default=None, help="loop rate; must equal the policy's control rate (default: it)")
    parser.add_argument("--duration", type=float, default=LoopConfig.duration,
                        help="seconds of policy control (default %(default)s; 0 = until Ctrl-C)")
    parser.add_argument("--dry-run", action="store_true", help="compute and log everything, send nothing (motion is never enabled)")
    parser.add_argument("--record", metavar="FILE", default=None, help="write the episode recording (.npz, docs/robot.md)")
    parser.add_argument("--json", action="store_true", help="print the end summary as JSON on stdout")
    parser.add_argument("--home", action="store_true", help="move to the default pose (safety-limited) before the policy starts")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the policy (default 1)")
    parser.add_argument("--rt-priority", type=int, default=None, metavar="N",
                        help="run the loop and the drivers' threads under SCHED_FIFO priority N (1-99; needs "
                             "CAP_SYS_NICE or an rtprio limit)")
    parser.add_argument("--source", default=None, help="episode id in the recording (default robot/<host>/<UTC time>)")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    g = parser.add_argument_group("safety")
    g.add_argument("--limit-margin", type=float, default=safety.limit_margin, help="rad inside each joint limit")
    g.add_argument("--workspace", type=float, nargs=6, metavar=("X0", "X1", "Y0", "Y1", "Z0", "Z1"), default=None,
                   help="palm box in the base frame, m (default %s..%s)" % (safety.workspace_low, safety.workspace_high))
    g.add_argument("--max-misses", type=int, default=safety.max_consecutive_misses,
                   help="missed steps in a row before the robot is stopped")
    g = parser.add_argument_group("sim robot")
    g.add_argument("--object-xy", type=float, nargs=2, default=None, metavar=("X", "Y"), help="where the object rests")
    g = parser.add_argument_group("xArm + Allegro")
    g.add_argument("--xarm-ip", default=None, help="xArm controller address")
    g.add_argument("--collision-sensitivity", type=int, default=XArmConfig.collision_sensitivity,
                   help="xArm collision sensitivity 0..5 (default %(default)s)")
    g.add_argument("--reduced-mode", action="store_true", help="enable the xArm's reduced mode")
    g.add_argument("--reduced-max-joint-speed", type=float, default=None, help="rad/s in reduced mode")
    g.add_argument("--reduced-max-tcp-speed", type=float, default=None, help="mm/s in reduced mode")
    g.add_argument("--can-channel", default="can0", help="Allegro CAN channel (default can0)")
    g.add_argument("--can-interface", default="socketcan", help="python-can interface (default socketcan)")
    g.add_argument("--hand-mode", choices=["torque", "position"], default="torque",
                   help="Allegro control: host PD torque (default) or firmware position frames")
    g.add_argument("--table-xyz", type=float, nargs=3, default=None, metavar=("X", "Y", "Z"),
                   help="table top centre in the base frame, for the recording (default the scene's)")
    g = parser.add_argument_group("cameras")
    g.add_argument("--camera-calibration", default=None, metavar="FILE", help="RealSense pose JSON {T_base_cam: 4x4}")
    g.add_argument("--camera-serial", default=None, help="RealSense serial number")
    parser.epilog = _RUN_EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


EXIT_OK, EXIT_REFUSED, EXIT_WATCHDOG, EXIT_POLICY_ERROR, EXIT_FAULT = 0, 2, 3, 4, 5
EXIT_SIGINT, EXIT_SIGTERM = 128 + signal.SIGINT, 128 + signal.SIGTERM  # the shell's convention: 130, 143
RUN_EXIT_STATUSES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "ended as planned: --duration reached, or the replayed camera stream ended"),
    (EXIT_REFUSED, "refused to start, nothing was sent: policy mismatch, bad arguments, hardware not "
                   "reachable, no sensor data at startup"),
    (EXIT_WATCHDOG, "the watchdog stopped the robot: --max-misses steps in a row without a policy answer "
                    "in time (a slow or hung policy) or without fresh sensor data"),
    (EXIT_POLICY_ERROR, "the policy raised an error"),
    (EXIT_FAULT, "robot fault, camera or driver error, or another error while running"),
    (EXIT_SIGINT, "stopped by SIGINT (Ctrl-C), also when SIGINT was inherited ignored (nohup, background job)"),
    (EXIT_SIGTERM, "stopped by SIGTERM"),
)  # fmt: skip
_RUN_EPILOG = "exit status (the robot is stopped and released, the recording written and the\n" \
    "summary printed first; the process always ends with one of these, never by a signal):\n" + "\n".join(
        textwrap.fill(text, 79, initial_indent=f"  {code:>3}  ", subsequent_indent=" " * 7)
        for code, text in RUN_EXIT_STATUSES
    )  # fmt: skip


class _Refused(Exception):
    """run refuses to start; nothing was sent."""


class _Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM before the loop existed."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def _signal_status(signal_name: str | None) -> int:
    return EXIT_SIGTERM if signal_name == "SIGTERM" else EXIT_SIGINT


class _Signals:
    """SIGINT and SIGTERM for the whole of ``run``, installed whatever the
    inherited disposition (``nohup`` and background jobs inherit SIGINT
    ignored; a robot must still stop on it).

    Before the loop exists the first signal raises ``_Interrupted``: the
    ``with`` blocks release what was opened and ``run`` exits 130/143. Once
    the loop exists, a signal asks it to stop (``ControlLoop`` installs its
    own handlers while it runs and restores these). A later signal while the
    hardware is being released is only noted: nothing interrupts a
    disconnect."""

    def __init__(self) -> None:
        self.loop = None  # the ControlLoop, once built
        self._raised = False
        self._previous: dict = {}

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def note_only(self) -> None:
        """From now on a signal changes nothing (the run is ending)."""
        self._raised = True

    def _handle(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self.loop is not None:
            self.loop.on_signal(name)  # lock-free: see ControlLoop.on_signal
        elif not self._raised:
            self._raised = True
            raise _Interrupted(name)


def _build_robot(args: argparse.Namespace, hz: float):
    read_only = args.dry_run
    if args.robot == "sim":
        from hop_robot.drivers.sim import SimRobot, SimRobotConfig

        config = SimRobotConfig() if args.object_xy is None else SimRobotConfig(object_xy=tuple(args.object_xy))
        return SimRobot(config, read_only=read_only)
    from hop_robot.drivers.allegro import AllegroConfig, AllegroHand
    from hop_robot.drivers.composite import ArmHandRobot
    from hop_robot.drivers.xarm import XArmConfig, XArmDriver

    if not args.xarm_ip:
        raise _Refused("--robot xarm needs --xarm-ip")
    arm = XArmDriver(
        XArmConfig(ip=args.xarm_ip, collision_sensitivity=args.collision_sensitivity, reduced_mode=args.reduced_mode or None,
                   reduced_max_joint_speed=args.reduced_max_joint_speed, reduced_max_tcp_speed=args.reduced_max_tcp_speed),
        read_only=read_only, control_hz=hz,
    )  # fmt: skip
    hand = AllegroHand(AllegroConfig(channel=args.can_channel, interface=args.can_interface, mode=args.hand_mode),
                       read_only=read_only)  # fmt: skip
    return ArmHandRobot(arm, hand)


def _build_camera(kind: str, args: argparse.Namespace, robot):
    if kind in ("sim", "sim:truth"):
        from hop_robot.drivers.sim import SimRobot

        if not isinstance(robot, SimRobot):
            raise _Refused(f"--camera {kind} needs --robot sim")
        from hop_robot.cameras.sim import SimDepthCamera, SimTruthCamera

        return SimDepthCamera(robot) if kind == "sim" else SimTruthCamera(robot)
    if kind == "realsense":
        from hop_robot.cameras.realsense import RealSenseCamera

        if not args.camera_calibration:
            raise _Refused("--camera realsense needs --camera-calibration FILE (the camera's pose in the robot base frame)")
        return RealSenseCamera(args.camera_calibration, serial=args.camera_serial)
    if kind.startswith("replay:"):
        from hop_robot.cameras.replay import ReplayCamera

        return ReplayCamera(kind[len("replay:"):])
    raise _Refused(f"unknown camera {kind!r} (sim, sim:truth, realsense, replay:FILE)")


def _file_sha256(path: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run(args: argparse.Namespace) -> int:
    import logging
    import os

    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "osmesa"  # offscreen rendering for the simulated camera
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)  # fmt: skip
    threads_before = set(threading.enumerate())
    with _Signals() as signals:  # until the very end: a Ctrl-C during the grace period must not raise
        try:
            status = _run_robot(args, signals)
        except _Interrupted as exc:  # before the loop existed; the with-blocks released what was open
            print(f"hop-robot run: stopped by {exc.signal_name} before the loop started; nothing was sent",
                  file=sys.stderr)  # fmt: skip
            status = _signal_status(exc.signal_name)
        signals.note_only()
        return _end(status, signals.loop, threads_before)


def _run_robot(args: argparse.Namespace, signals: _Signals) -> int:
    """Everything of ``run`` up to its exit status; the hardware is released when it returns."""
    import datetime
    import logging
    import os
    import socket

    from hop_robot.cameras.base import CameraError
    from hop_robot.drivers.base import DriverError, RobotFault
    from hop_robot.loop import ControlLoop, LoopConfig, LoopError, realtime_priority
    from hop_robot.policy import ExportedPolicy, PolicyMismatchError
    from hop_robot.record import EpisodeRecorder
    from hop_robot.safety import SafetyConfig

    log = logging.getLogger("hop_robot.run")

    def refuse(message: str) -> int:
        print(f"hop-robot run: refusing to start (nothing was sent): {message}", file=sys.stderr)
        return EXIT_REFUSED

    # 1. the policy, checked against this robot before anything is opened
    try:
        policy = ExportedPolicy(args.policy, num_threads=args.threads)
    except PolicyMismatchError as exc:
        return refuse(str(exc))
    except (OSError, RuntimeError, ValueError) as exc:
        return refuse(f"cannot load policy {args.policy}: {exc}")
    hz = float(args.hz) if args.hz is not None else float(policy.control_hz)
    if hz != policy.control_hz:
        return refuse(f"--hz {hz:g} differs from the policy's control rate {policy.control_hz} Hz")
    if args.duration < 0:
        return refuse("--duration must be >= 0")
    try:
        safety = SafetyConfig(
            limit_margin=args.limit_margin, max_consecutive_misses=args.max_misses,
            **({} if args.workspace is None else {
                "workspace_low": tuple(args.workspace[0::2]), "workspace_high": tuple(args.workspace[1::2])}),
        )  # fmt: skip
        safety.validate()
    except ValueError as exc:
        return refuse(str(exc))
    camera_kind = args.camera or ("sim" if args.robot == "sim" else "realsense")
    loop_config = LoopConfig(hz=hz, duration=args.duration or None, dry_run=args.dry_run, home=args.home)

    # 2. hardware: drivers and camera are context managers (always released)
    started = datetime.datetime.now(datetime.timezone.utc)
    try:  # built, not yet connected: bad combinations are refused here
        robot = _build_robot(args, hz)
        camera = _build_camera(camera_kind, args, robot)
    except (_Refused, ValueError, CameraError) as exc:
        return refuse(str(exc))
    loop = None
    try:
        with realtime_priority(args.rt_priority), _connected(robot, log):
            with camera:
                recorder = None
                if args.record:
                    if args.table_xyz is not None:
                        table = [*args.table_xyz, 1.0, 0.0, 0.0, 0.0]
                    elif args.robot == "sim":
                        table = robot.config.scene.default_table_pose()
                    else:
                        from hop_robot.sim import SceneConfig

                        table = SceneConfig().default_table_pose()
                    source = args.source or f"robot/{socket.gethostname()}/{started.strftime('%Y%m%dT%H%M%SZ')}"
                    recorder = EpisodeRecorder(args.record, source=source, table_pose=table,
                                               num_points=policy.num_points, control_hz=hz)  # fmt: skip
                meta = {
                    "policy": os.path.abspath(args.policy), "policy_sha256": _file_sha256(args.policy),
                    "policy_metadata": policy.metadata, "robot": robot.name, "camera": camera_kind,
                    "dry_run": args.dry_run, "host": socket.gethostname(), "started_utc": started.isoformat(),
                }  # fmt: skip
                loop = signals.loop = ControlLoop(robot, camera, policy, config=loop_config, safety=safety,
                                                  recorder=recorder, meta=meta)  # fmt: skip
                log.info("running %s on %s with camera %s at %g Hz%s", args.policy, robot.name, camera_kind, hz,
                         " (DRY RUN: nothing is sent)" if args.dry_run else "")  # fmt: skip
                summary = loop.run()
    except _Refused as exc:
        return refuse(str(exc))
    except (DriverError, CameraError, LoopError) as exc:
        started_moving = loop is not None and (loop.summary.steps or loop.summary.commands_sent)
        if loop is None or (not started_moving and not isinstance(exc, RobotFault) and loop.summary.cause != "signal"):
            return refuse(str(exc))
        _print_summary(loop.summary, args.json)
        print(f"hop-robot run: stopped: {loop.summary.reason or exc}", file=sys.stderr)
        return _exit_status(loop.summary)
    except Exception as exc:  # the robot was stopped and released on the way out
        if loop is not None:
            _print_summary(loop.summary, args.json)
        print(f"hop-robot run: stopped on error: {exc!r}", file=sys.stderr)
        return _exit_status(loop.summary) if loop is not None and loop.summary.cause else EXIT_FAULT
    _print_summary(summary, args.json)
    return _exit_status(summary)


@contextlib.contextmanager
def _connected(robot, log) -> Iterator:
    """``with robot`` (connect ... stop + disconnect, however the block is left),
    saying so once the robot has been released."""
    entered = False
    try:
        with robot:
            entered = True
            yield robot
    finally:
        if entered:
            log.info("%s stopped and disconnected", robot.name)


def _exit_status(summary) -> int:
    """The exit status of a run that got as far as the loop (``RUN_EXIT_STATUSES``)."""
    from hop_robot.loop import StopCause

    cause = StopCause(summary.cause)
    if cause is StopCause.SIGNAL:
        return _signal_status(summary.signal)
    return {
        StopCause.DURATION: EXIT_OK, StopCause.CAMERA_ENDED: EXIT_OK, StopCause.REQUESTED: EXIT_OK,
        StopCause.WATCHDOG: EXIT_WATCHDOG, StopCause.POLICY_ERROR: EXIT_POLICY_ERROR,
        StopCause.STARTUP: EXIT_REFUSED if not summary.commands_sent else EXIT_FAULT,
    }.get(cause, EXIT_FAULT)  # fmt: skip


def _end(status: int, loop, threads_before: set[threading.Thread]) -> int:
    """Return ``status``, or end the process with it here when something the run
    started is still running (by now the robot is stopped and released, the
    recording written and the summary printed).

    A policy call still running gets ``policy_grace`` s to return. After that
    the only exit that cannot abort is ``os._exit``: at a normal interpreter
    exit a daemon thread inside TorchScript is unwound by glibc's forced
    unwinding and the C++ runtime terminates the process (SIGABRT)."""
    import logging

    log = logging.getLogger("hop_robot.run")
    if loop is not None and not loop.join_policy():
        log.warning("the policy is still inside a call %g s after the loop stopped: abandoning it",
                    loop.config.policy_grace)  # fmt: skip
    current = threading.current_thread()
    left = [t for t in threading.enumerate() if t.is_alive() and t is not current and t not in threads_before]
    if not left:
        return status
    log.warning("ending the process with status %d; still running: %s", status, ", ".join(t.name for t in left))
    _hard_exit(status)
    return status  # not reached


def _hard_exit(status: int) -> None:
    """Flush what was written, then end the process at once (``os._exit``: no
    interpreter shutdown, nothing left to unwind other threads)."""
    import logging
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: nothing more to save
            pass
    logging.shutdown()
    os._exit(status)


def _print_summary(summary, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(summary.text())


# ---------------------------------------------------------------- registry
Subcommand = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
SUBCOMMANDS: dict[str, Subcommand] = {
    "describe": ("print the embodiment: joints, limits, default pose, gains, keypoints, model path",
                 _describe_args, _describe),
    "run": ("run an exported policy on the robot: the 20 Hz closed loop with safety", _run_args, _run),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hop-robot", description="HOP robot side (xArm7 + Allegro).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add_args, run) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

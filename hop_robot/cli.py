"""``hop-robot``: the robot-side command line.

Subcommands are registered in ``SUBCOMMANDS`` (name -> (help, add_arguments, run)).

    hop-robot describe [--json] [--model PATH]
    hop-robot run --policy policy.pt --robot sim|xarm [--camera sim|sim:truth|realsense|replay:FILE]
                  [--hz 20] [--duration S] [--dry-run] [--record FILE] [--json] ...

``run`` exits 0 when it ends normally (duration reached, Ctrl-C/SIGTERM, recorded
camera stream ended), 2 when it refuses to start (nothing was sent: policy
metadata mismatch, bad arguments, hardware not reachable), 3 when it stopped
the robot because of a fault (watchdog, robot or camera error, policy error)
and 130 on Ctrl-C while connecting. docs/robot.md has the details.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

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


class _Refused(Exception):
    """run refuses to start; nothing was sent."""


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
    log = logging.getLogger("hop_robot.run")

    def refuse(message: str) -> int:
        print(f"hop-robot run: refusing to start (nothing was sent): {message}", file=sys.stderr)
        return 2

    import datetime
    import socket

    from hop_robot.cameras.base import CameraError
    from hop_robot.drivers.base import DriverError, RobotFault
    from hop_robot.loop import ControlLoop, LoopConfig, LoopError, realtime_priority
    from hop_robot.policy import ExportedPolicy, PolicyMismatchError
    from hop_robot.record import EpisodeRecorder
    from hop_robot.safety import SafetyConfig

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
        with realtime_priority(args.rt_priority), robot:
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
                loop = ControlLoop(robot, camera, policy, config=loop_config, safety=safety, recorder=recorder, meta=meta)
                log.info("running %s on %s with camera %s at %g Hz%s", args.policy, robot.name, camera_kind, hz,
                         " (DRY RUN: nothing is sent)" if args.dry_run else "")  # fmt: skip
                summary = loop.run()
    except _Refused as exc:
        return refuse(str(exc))
    except (DriverError, CameraError, LoopError) as exc:
        if loop is None or not (loop.summary.steps or loop.summary.commands_sent):
            if isinstance(exc, RobotFault) and loop is not None:
                _print_summary(loop.summary, args.json)
                print(f"hop-robot run: robot fault: {exc}", file=sys.stderr)
                return 3
            return refuse(str(exc))
        _print_summary(loop.summary, args.json)
        print(f"hop-robot run: stopped: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:  # Ctrl-C before the loop took over the signal (connecting)
        print("hop-robot run: interrupted before the loop started; the robot was released", file=sys.stderr)
        return 130
    except Exception as exc:  # the robot was stopped and released on the way out
        if loop is not None:
            _print_summary(loop.summary, args.json)
        print(f"hop-robot run: stopped on error: {exc!r}", file=sys.stderr)
        return 3
    _print_summary(summary, args.json)
    return 3 if summary.reason.startswith("watchdog") else 0


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

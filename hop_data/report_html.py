"""``hop-data report STORE --out report.html``: what a store holds and why
attempts failed, as one self-contained HTML page (plots and images inline as
data URIs; no script, no external file).

Sections, from the per-source reports committed with each video
(``report.video_summary``, see docs/retargeting.md, "Why attempts fail"):

1. a summary table: videos, attempts, kept, acceptance, rejections by cause;
2. acceptance per video (bars);
3. rejection causes per video (stacked bars);
4. error over time: the median over the kept attempts of the keypoint error
   at each 20 Hz step, one line per video;
5. per-keypoint error of the kept attempts (median and p95, the 9 robot
   keypoints; fingertips marked);
6. a few rendered episodes beside their human source: the human hand (its 21
   joints as the video gave them, a side view) and the robot replaying the
   kept episode with the human keypoint targets (green) and its own (red),
   at four moments (needs ``--hoi`` for the human side and offscreen
   rendering, ``MUJOCO_GL=osmesa``; a section that cannot be drawn says why).

Stores written before per-source reports existed get the table of episodes
per source only.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from hop_data.retarget.config import REJECTION_CAUSES
from hop_robot.embodiment import spec

CAUSE_COLOURS = {
    "under_table": "#8c564b",
    "off_table": "#e377c2",
    "unreachable": "#9467bd",
    "keypoint_error": "#ff7f0e",
    "arm_contact": "#d62728",
    "hand_contact": "#7f7f7f",
}
_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1100px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.8em; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td.source { text-align: left; font-family: monospace; }
img { max-width: 100%; } .note { color: #666; font-size: 0.9em; } .episode { margin: 1em 0; }
"""


def _png(fig) -> str:
    """A matplotlib figure as an <img> with a data URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _image(array: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buf, format="PNG")
    return f'<img alt="render" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _short(source: str, width: int = 28) -> str:
    return source if len(source) <= width else "…" + source[-(width - 1) :]


def _plots(videos: list[dict[str, Any]]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [_short(v["source"]) for v in videos]
    y = np.arange(len(videos))
    h = 0.35 * len(videos) + 1.2
    out = {}

    fig, ax = plt.subplots(figsize=(8, h))
    acc = [100 * (v.get("acceptance") or 0) for v in videos]
    ax.barh(y, acc, color="#2ca02c")
    for yi, a, v in zip(y, acc, videos):
        ax.text(a + 1, yi, f"{v.get('accepted')}/{v.get('attempts')}", va="center", fontsize=8)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.set_xlabel("attempts kept (%)")
    out["acceptance"] = _png(fig)

    fig, ax = plt.subplots(figsize=(8, h))
    left = np.zeros(len(videos))
    for cause in ("accepted", *REJECTION_CAUSES):
        n = np.array([v.get("accepted", 0) if cause == "accepted" else v.get("rejected", {}).get(cause, 0) for v in videos], float)
        if not n.any():
            continue
        ax.barh(y, n, left=left, color=CAUSE_COLOURS.get(cause, "#2ca02c"), label=cause)
        left += n
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("attempts")
    ax.legend(fontsize=8, loc="lower right")
    out["causes"] = _png(fig)

    fig, ax = plt.subplots(figsize=(8, 3.2))
    drawn = 0
    for v, name in zip(videos, names):
        curve = v.get("kept_error_over_time_m") or []
        if curve:
            ax.plot(np.arange(len(curve)) / spec.CONTROL_HZ, 1000 * np.asarray(curve), lw=1, label=name)
            drawn += 1
    ax.set_xlabel("time (s)")
    ax.set_ylabel("keypoint error (mm)")
    if 0 < drawn <= 10:
        ax.legend(fontsize=7)
    out["over_time"] = _png(fig) if drawn else '<p class="note">no kept attempt: no error curve</p>'

    fig, ax = plt.subplots(figsize=(8, 3.2))
    sites = list(spec.KEYPOINT_SITES)
    med = np.full((len(videos), len(sites)), np.nan)
    p95 = np.full_like(med, np.nan)
    for i, v in enumerate(videos):
        for j, s in enumerate(sites):
            stats = (v.get("kept_keypoint_error_m") or {}).get(s) or {}
            if stats.get("median") is not None:
                med[i, j], p95[i, j] = stats["median"], stats["p95"]
    if np.isfinite(med).any():
        x = np.arange(len(sites))
        with np.errstate(all="ignore"):
            ax.bar(x - 0.2, 1000 * np.nanmedian(med, axis=0), 0.4, label="median", color="#1f77b4")
            ax.bar(x + 0.2, 1000 * np.nanmedian(p95, axis=0), 0.4, label="p95", color="#aec7e8")
        ax.set_xticks(x, [s.removeprefix("kp_") for s in sites], rotation=30, fontsize=8)
        ax.set_ylabel("error of kept attempts (mm)")
        ax.legend(fontsize=8)
        out["keypoints"] = _png(fig)
    else:
        plt.close(fig)
        out["keypoints"] = '<p class="note">no kept attempt: no per-keypoint errors</p>'
    return out


def _human_panel(joints: np.ndarray, steps: list[int], lead: int) -> str:
    """The human hand at the given steps (prepared 20 Hz rows, lead-in held),
    gravity down, seen from the side: one small skeleton per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hop_data import hoi

    fig, axes = plt.subplots(1, len(steps), figsize=(2.2 * len(steps), 2.4))
    for ax, k in zip(np.atleast_1d(axes), steps):
        j = joints[max(0, k - lead)]
        for child, parent in enumerate(hoi.HUMAN_JOINT_PARENTS):
            if parent >= 0:
                ax.plot(j[[parent, child], 0], j[[parent, child], 2], color="#2ca02c", lw=1.5)
        ax.scatter(j[:, 0], j[:, 2], s=6, color="#2ca02c")
        ax.set_aspect("equal")
        ax.set_title(f"t = {k / spec.CONTROL_HZ:.1f} s", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    return _png(fig)


def _episodes(store_url: str, hoi_path: str | None, count: int, videos: list[dict]) -> str:
    """Rendered kept episodes beside their human source (the first kept episode of the first videos)."""
    from hop_data.store import TrajectoryStore

    reader = TrajectoryStore.open(store_url, "r").reader()
    if reader.num_episodes == 0:
        return '<p class="note">no episode is stored</p>'
    sources = reader.meta("source")
    chosen, seen = [], set()
    for i, s in enumerate(sources):
        s = str(s)
        if s not in seen:
            seen.add(s)
            chosen.append(i)
        if len(chosen) >= count:
            break
    parts = []
    try:
        from hop_data.render import episode_frames
    except Exception as exc:  # noqa: BLE001 - no offscreen GL here: say so, draw the rest
        return f'<p class="note">episodes not rendered: {html.escape(str(exc))}</p>'
    for i in chosen:
        try:
            ep = reader.episode(i)
            n = len(ep["proprio"])
            lead = int(round(1.0 * spec.CONTROL_HZ))
            steps = sorted({lead, lead + (n - lead) // 3, lead + 2 * (n - lead) // 3, n - 1})
            images, summary = [], None
            for image, summary in episode_frames(store_url, i, hoi_path, 320, 240, steps=steps):
                images.append(image)
            robot = _image(np.concatenate(images, axis=1))
            human = ""
            if hoi_path is not None:
                from hop_data import hoi
                from hop_data.render import find_source

                found = find_source(hoi_path, summary["source"])
                if found is not None:
                    prepared = hoi.prepare(hoi.load(found))
                    aligned = prepared.hand_joints.astype(np.float64) @ hoi.gravity_alignment(prepared.gravity).T
                    human = _human_panel(aligned, steps, lead)
            parts.append(
                f'<div class="episode"><h3>episode {i}: <code>{html.escape(summary["source"])}</code> '
                f'(seed {summary["seed"]}, max error {1000 * summary["max_error_m"]:.1f} mm)</h3>'
                + (f"<p>human source (side view, gravity down):</p>{human}" if human else
                   '<p class="note">human source not shown (give --hoi DIR with the *.hoi.npz files)</p>')
                + f"<p>robot (red: its keypoints; green: the human targets it follows):</p>{robot}</div>"
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - one episode that cannot be drawn does not end the report
            parts.append(f'<p class="note">episode {i} not rendered: {html.escape(f"{type(exc).__name__}: {exc}")}</p>')
    return "\n".join(parts)


def write_report(store_url: str, out: str | os.PathLike, hoi_path: str | None = None, episodes: int = 3) -> dict[str, Any]:
    """Write the HTML report of ``store_url`` to ``out``; returns what it shows."""
    from hop_data.report import store_report_summary
    from hop_data.store import TrajectoryStore

    store = TrajectoryStore.open(store_url, "r")
    info = store.info()
    reports = store.source_reports()
    summary = store_report_summary(reports) if reports else None
    title = f"HOP retargeting report: {html.escape(str(info['url']))}"
    body = [f"<h1>{title}</h1>"]
    body.append(
        f"<p>{info['episodes']} episodes, {info['steps']} steps from {info['sources']} source videos "
        f"({info['sources_without_episodes']} with none kept); embodiment {html.escape(info['embodiment'])}.</p>"
    )
    if summary is None:
        counts = store.reader(cache_bytes=0).episodes_per_source()
        rows = "".join(f'<tr><td class="source">{html.escape(s)}</td><td>{n}</td></tr>' for s, n in sorted(counts.items()))
        body.append('<p class="note">this store holds no per-video reports (written before they existed): episodes per source only</p>')
        body.append(f"<table><tr><th>source</th><th>episodes</th></tr>{rows}</table>")
    else:
        videos = summary["per_video"]
        for v in videos:  # the error curves are in the reports only (hop-data info leaves them out)
            v["kept_error_over_time_m"] = reports[v["source"]].get("kept_error_over_time_m") or []
        columns = ("source", "attempts", "kept", "acceptance", *REJECTION_CAUSES, "kept error median / p95", "fingertips median / p95")
        head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in columns)

        def mm(d):
            return "-" if not d or d.get("median") is None else f"{1000 * d['median']:.1f} / {1000 * d['p95']:.1f} mm"

        rows = []
        for v in videos:
            rejected = "".join(f"<td>{v['rejected'].get(c, 0)}</td>" for c in REJECTION_CAUSES)
            rows.append(
                f'<tr><td class="source">{html.escape(v["source"])}</td><td>{v["attempts"]}</td><td>{v["accepted"]}</td>'
                f'<td>{100 * (v["acceptance"] or 0):.0f} %</td>{rejected}<td>{mm(v["kept_error_m"])}</td>'
                f'<td>{mm(v["kept_fingertip_error_m"])}</td></tr>'
            )
        total_rej = "".join(f"<td>{summary['rejections'][c]}</td>" for c in REJECTION_CAUSES)
        rows.append(
            f'<tr><th>all {len(videos)} videos</th><th>{summary["attempts"]}</th><th>{summary["accepted"]}</th>'
            f'<th>{100 * (summary["acceptance"] or 0):.0f} %</th>{total_rej}<th></th><th></th></tr>'
        )
        plots = _plots(videos)
        body += [
            "<h2>Summary</h2>",
            '<p class="note">each attempt has one cause; kept + rejected = attempts</p>',
            f"<table id=\"summary\"><tr>{head}</tr>{''.join(rows)}</table>",
            "<h2>Acceptance per video</h2>", plots["acceptance"],
            "<h2>Rejection causes</h2>", plots["causes"],
            "<h2>Error over time (kept attempts, median)</h2>", plots["over_time"],
            "<h2>Per-keypoint error (kept attempts)</h2>", plots["keypoints"],
        ]  # fmt: skip
    body.append("<h2>Rendered episodes beside their human source</h2>")
    body.append(_episodes(str(store_url), hoi_path, episodes, summary["per_video"] if summary else []) if episodes > 0 else "")
    page = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title><style>{_CSS}</style></head>\n'
        f"<body>\n{chr(10).join(body)}\n</body></html>\n"
    )
    Path(out).write_text(page, encoding="utf-8")
    return {
        "out": str(out),
        "videos": 0 if summary is None else summary["reported_videos"],
        "attempts": 0 if summary is None else summary["attempts"],
        "accepted": 0 if summary is None else summary["accepted"],
        "images": page.count("<img "),
        "bytes": len(page.encode()),
    }

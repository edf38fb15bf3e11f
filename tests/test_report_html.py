"""``hop-data report``: one self-contained HTML page, opened in headless
Chromium (Debian's chromium-headless-shell or chromium) to check what it shows."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

BROWSERS = ("chromium-headless-shell", "chromium")


def hop_data(*args):
    return subprocess.run([sys.executable, "-m", "hop_data.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from hop_data import synth

    d = tmp_path_factory.mktemp("report")
    synth.synthesize(d / "hoi", 2, 0)
    run = hop_data("retarget", str(d / "hoi"), "--store", str(d / "s.zarr"), "--attempts", "6", "--json", "--quiet")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    out = hop_data("report", str(d / "s.zarr"), "--out", str(d / "report.html"), "--hoi", str(d / "hoi"), "--episodes", "1", "--json")
    assert out.returncode == 0, out.stderr
    return d / "report.html", summary, json.loads(out.stdout)


def test_the_page_is_self_contained(page):
    path, summary, written = page
    text = path.read_text()
    assert written["videos"] == 2 and written["attempts"] == summary["attempts"] == 12
    assert "<script" not in text and not re.search(r'(src|href)="(?!data:)', text)  # nothing to fetch
    assert text.count('src="data:image/png;base64,') == written["images"] >= 5  # 4 plots, a render (+ the human hand)


def test_headless_chromium_shows_the_report(page, tmp_path):
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no headless Chromium here (make sysdeps installs Debian's chromium-headless-shell)")
    path, summary, written = page
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"]
    dom = subprocess.run([*args, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120).stdout
    # the browser parsed it: the summary table lists each video with its counts, the sections are there
    assert "HOP retargeting report" in dom
    rows = re.findall(r'<tr><td class="source">([^<]+)</td><td>(\d+)</td><td>(\d+)</td>', dom)
    assert {(s, int(a), int(k)) for s, a, k in rows} == {
        (v["source"], v["attempts"], v["accepted"]) for v in summary["per_video"]
    }
    for heading in ("Acceptance per video", "Rejection causes", "Error over time", "Per-keypoint error", "Rendered episodes beside their human source"):
        assert f"<h2>{heading}" in dom
    assert dom.count("<img ") == written["images"]
    # and drew it: a screenshot of the page is not blank
    shot = tmp_path / "page.png"
    subprocess.run([*args, f"--screenshot={shot}", "--window-size=1100,1800", path.as_uri()], capture_output=True, timeout=120)
    from PIL import Image
    import numpy as np

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10  # text, plots and renders, not an empty page

"""100 Days of Hands annotations: VOC XML in the published schema -> per-video boxes, acting hand, contact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hop_data.cli import main as hop_data_main
from hop_data.sources import doh100
from hop_data.sources.doh100 import AnnotationError, VideoAnnotations

VIDEO = "boardgame_v_W_qdSiPKSdQ"


def _hand(box, side, contact, dx=None, dy=None, mag=None) -> str:
    extra = "".join(f"<{k}>{'None' if v is None else v}</{k}>" for k, v in (("unitdx", dx), ("unitdy", dy), ("magnitude", mag)))
    return (
        "<object><name>hand</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
        f"<bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox>"
        f"<contactstate>{contact}</contactstate><handside>{side}</handside>{extra}</object>"
    )


def _target(box) -> str:
    return (
        "<object><name>targetobject</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
        f"<bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox>"
        "<contactstate>None</contactstate><handside>None</handside><unitdx>None</unitdx><unitdy>None</unitdy><magnitude>None</magnitude></object>"
    )


def _xml(image: str, objects: list[str]) -> str:
    return (
        f"<annotation><folder>VOC2007</folder><filename>{image}</filename>"
        "<size><width>1280</width><height>720</height><depth>3</depth></size><segmented>0</segmented>"
        + "".join(objects) + "</annotation>"
    )


def _write_video(folder: Path) -> None:
    """Frames 10, 20, 30, 40 of one video: the right hand reaches (10), holds a
    portable object (20, 30) and lets go (40); the left hand rests on the table."""
    folder.mkdir(parents=True, exist_ok=True)
    left = _hand((900, 500, 1000, 600), 0, 4)
    obj_a, obj_b = (600, 300, 700, 420), (100, 100, 160, 150)
    frames = {
        10: [_hand((401, 301, 501, 401), 1, 0), left, _target(obj_b)],
        20: [_hand((501, 301, 601, 401), 1, 3, 0.8, 0.0, 100.0), left, _target(obj_a), _target(obj_b)],
        30: [_hand((511, 301, 611, 401), 1, 3, 0.8, 0.0, 100.0), _target(obj_b), _target(obj_a)],
        40: [_hand((520, 301, 620, 401), 1, 0), left],
    }
    for f, objs in frames.items():
        (folder / f"{VIDEO}_frame{f:06d}.xml").write_text(_xml(f"{VIDEO}_frame{f:06d}.jpg", objs))


def test_parse_frame(tmp_path):
    _write_video(tmp_path)
    video, ann = doh100.parse_voc_xml(tmp_path / f"{VIDEO}_frame000020.xml")
    assert video == VIDEO and ann.frame == 20 and (ann.width, ann.height) == (1280, 720)
    right = [h for h in ann.hands if h.side == "right"][0]
    assert right.box == [500.0, 300.0, 600.0, 400.0]  # 1-based -> 0-based
    assert right.contact == 3 and right.offset == [0.8, 0.0] and right.magnitude == 100.0
    assert ann.objects[0] == [599.0, 299.0, 699.0, 419.0]
    assert doh100.split_frame_name("boardgame_848_sU8S98MT1Mo_00013957.png") == ("boardgame_848_sU8S98MT1Mo", 13957)


def test_video_queries(tmp_path):
    _write_video(tmp_path)
    videos, errors = doh100.read_xml_dir(tmp_path)
    assert errors == [] and list(videos) == [VIDEO]
    v = videos[VIDEO]
    assert v.acting_side() == "right"
    assert v.acting_hand(20).box == [500.0, 300.0, 600.0, 400.0]
    assert v.acting_hand(20, "left").contact == 4
    # the object the hand points at: centre (550, 350) + 100 * (0.8, 0) -> nearest to obj_a, whatever the order
    assert v.object_box(30) == [599.0, 299.0, 699.0, 419.0]
    assert v.object_box(20) == [599.0, 299.0, 699.0, 419.0]
    mask = v.contact_mask(50)
    # nearest annotated frame: 0-15 -> 10 (no), 16-25 -> 20 (yes), 26-35 -> 30 (yes), 36+ -> 40 (no)
    assert not mask[:15].any() and mask[16:35].all() and not mask[36:].any()
    assert v.contact_mask(5) is None  # no annotated frame inside a 5-frame video
    # JSON round trip
    back = VideoAnnotations.from_json(v.to_json())
    assert back.to_json() == v.to_json()


def test_left_acting_hand_and_stationary(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    for f, side in ((1, 0), (2, 0), (3, 1)):
        (folder / f"cooking_v_abc_frame{f:06d}.xml").write_text(_xml(f"cooking_v_abc_frame{f:06d}.jpg", [_hand((1, 1, 50, 50), side, 3)]))
    videos, _ = doh100.read_xml_dir(folder)
    assert videos["cooking_v_abc"].acting_side() == "left"


def test_schema_errors(tmp_path):
    bad = tmp_path / f"{VIDEO}_frame000001.xml"
    bad.write_text(_xml(bad.stem + ".jpg", [_hand((1, 1, 5, 5), 1, 7)]))
    with pytest.raises(AnnotationError, match=r"frame000001.xml: object 0 <contactstate> must be 0-4, got 7"):
        doh100.parse_voc_xml(bad)
    bad.write_text(_xml(bad.stem + ".jpg", [_hand((1, 1, 5, 5), "None", 3)]))
    with pytest.raises(AnnotationError, match="handside"):
        doh100.parse_voc_xml(bad)
    bad.write_text("<annotation><object>")
    with pytest.raises(AnnotationError, match="not a readable XML"):
        doh100.parse_voc_xml(bad)
    bad.write_text(_xml("no_number.jpg", []))
    with pytest.raises(AnnotationError, match="cannot tell its video and frame"):
        doh100.parse_voc_xml(bad)


def test_cli_and_lookup(tmp_path, capsys):
    _write_video(tmp_path / "xml" / "sub")
    (tmp_path / "xml" / "broken_frame000001.xml").write_text("<annotation>")
    out = tmp_path / "ann"
    assert hop_data_main(["import", "doh100", str(tmp_path / "xml"), "--out", str(out), "--json"]) == 0
    text = capsys.readouterr().out
    assert '"videos": 1' in text and '"frames_with_errors": 1' in text
    path = out / f"{VIDEO}.doh.json"
    assert VideoAnnotations.load(path).frames.keys() == {10, 20, 30, 40}
    # the lifting step finds a video's annotations by its stem (also a prefixed stem), from JSON or XML
    assert doh100.find_annotations(VIDEO, out).video == VIDEO
    assert doh100.find_annotations("hoi_" + VIDEO, out).video == VIDEO
    assert doh100.find_annotations(VIDEO, tmp_path / "xml" / "sub").video == VIDEO
    assert doh100.find_annotations("other", out) is None
    assert hop_data_main(["import", "doh100", str(tmp_path / "missing"), "--out", str(out)]) == 2

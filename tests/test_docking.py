"""Docking protocol: labels, split, detector, mAP and the `stfuse dock` command on the real MSRS set."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from stfuse.docking import (
    MSRS_CLASSES,
    Boxes,
    CenterNetDetector,
    DockingConfig,
    DockingError,
    LabelError,
    SourceSpec,
    TrainSettings,
    load_split,
    make_split,
    mean_average_precision,
    parse_yolo_file,
    predict,
    read_label_dir,
    run_docking,
    train_detector,
)
from stfuse.docking.cli import main as dock_main
from stfuse.docking.protocol import limit_stems
from stfuse.docking.sources import read_image, write_image
from stfuse.docking.train import augment

REPO_ROOT = Path(__file__).resolve().parents[1]
SPLIT_FILE = REPO_ROOT / "experiments" / "docking" / "msrs_det_split.json"


@pytest.fixture(scope="module")
def msrs(data_root: Path) -> Path:
    root = data_root / "docking" / "msrs_det"
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    return root


def _stems(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "ir").glob("*.png"))


# ---------------------------------------------------------------------------------------------- labels
@pytest.mark.data
def test_fusion_labels_with_double_spaces_parse_to_the_documented_counts(msrs: Path) -> None:
    raw = (msrs / "label" / "fusion" / "00004N.txt").read_text()
    assert "  " in raw and not raw.endswith("\n"), (
        "the shipped fusion files use double spaces, no final newline"
    )
    first = parse_yolo_file(msrs / "label" / "fusion" / "00004N.txt")
    assert len(first) == raw.count("\n") + 1
    cx, cy, w, h = (float(v) for v in raw.split()[1:5])
    assert torch.allclose(first.xyxy[0], torch.tensor([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))

    labels = read_label_dir(msrs / "label" / "fusion", _stems(msrs))
    counts = np.bincount(torch.cat([b.labels for b in labels.values()]).numpy(), minlength=3)
    assert counts.tolist() == [319, 45, 182]  # person, bicycle, car as in SOURCES.md
    assert all(len(b) > 0 for b in labels.values())
    xyxy = torch.cat([b.xyxy for b in labels.values()])
    assert (xyxy >= 0).all() and (xyxy <= 1).all() and (xyxy[:, 2:] > xyxy[:, :2]).all()


@pytest.mark.data
def test_empty_label_file_means_no_objects(msrs: Path) -> None:
    empty = msrs / "label" / "infrared" / "00695N.txt"
    assert empty.stat().st_size == 0
    boxes = parse_yolo_file(empty)
    assert len(boxes) == 0 and boxes.xyxy.shape == (0, 4)


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ("0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1\n", r"bad\.txt:2: expected 5 fields"),
        ("0 0.5 0.5 0.1 0.1\n\n3 0.5 0.5 0.1 0.1\n", r"bad\.txt:3: class id 3 is out of range \[0, 2\]"),
        ("-1 0.5 0.5 0.1 0.1\n", r"bad\.txt:1: class id -1 is out of range"),
        ("person 0.5 0.5 0.1 0.1\n", r"bad\.txt:1: class id 'person' is not an integer"),
        ("0 0.5 abc 0.1 0.1\n", r"bad\.txt:1: coordinates must be numbers"),
        ("0 1.5 0.5 0.1 0.1\n", r"bad\.txt:1: box .* is not normalised"),
        ("0 0.5 0.5 0 0.1\n", r"bad\.txt:1: box .* zero size"),
        ("0 0.5 0.5 nan 0.1\n", r"bad\.txt:1: coordinates must be finite"),
    ],
)
def test_malformed_label_lines_name_file_and_line(tmp_path: Path, content: str, pattern: str) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text(content)
    with pytest.raises(LabelError, match=pattern):
        parse_yolo_file(bad)


def test_missing_label_file_is_an_error_naming_the_stem(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("0  0.5  0.5  0.2  0.2  ")
    (tmp_path / "b.txt").write_text("")
    assert [len(b) for b in read_label_dir(tmp_path, ["a", "b"]).values()] == [1, 0]
    with pytest.raises(LabelError, match=r"1 stem\(s\) have no label file \(c\)"):
        read_label_dir(tmp_path, ["a", "b", "c"])
    with pytest.raises(LabelError, match=r"c\.txt: label file is missing"):
        parse_yolo_file(tmp_path / "c.txt")


# ----------------------------------------------------------------------------------------------- split
@pytest.mark.data
def test_committed_split_is_disjoint_complete_stratified_and_reproducible(msrs: Path) -> None:
    split = load_split(SPLIT_FILE)
    stems = _stems(msrs)
    assert len(stems) == 130
    assert set(split.train).isdisjoint(split.test)
    assert sorted([*split.train, *split.test]) == stems
    assert (len(split.train), len(split.test)) == (100, 30)
    for tag in "DN":
        assert sum(s.endswith(tag) for s in split.test) == 15
    assert make_split(stems) == split, "the committed file must be what the documented rule gives"
    data = json.loads(SPLIT_FILE.read_text())
    assert data["num_train"] == 100 and data["num_test"] == 30
    labels = read_label_dir(msrs / "label" / "fusion", list(split.test))
    counts = np.bincount(torch.cat([b.labels for b in labels.values()]).numpy(), minlength=3)
    assert (counts > 0).all(), "every class must be present in the test set"


def test_bad_split_files_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"train": ["a", "b"], "test": ["b", "c"]}))
    with pytest.raises(DockingError, match="in both train and test: b"):
        load_split(path)
    path.write_text(json.dumps({"train": ["a", "a"], "test": ["c"]}))
    with pytest.raises(DockingError, match="more than once: a"):
        load_split(path)
    path.write_text("{\n  'train': []\n}")
    with pytest.raises(DockingError, match=r"split\.json:2: not valid JSON"):
        load_split(path)


# -------------------------------------------------------------------------------------------- detector
def test_augmentation_keeps_boxes_on_the_object() -> None:
    """A bright rectangle must stay inside its transformed box under scale, crop and flip."""
    img = torch.zeros(1, 96, 128)
    img[:, 30:60, 20:50] = 1.0
    boxes = torch.tensor([[20 / 128, 30 / 96, 50 / 128, 60 / 96]])
    settings = TrainSettings(
        image_size=(128, 96), crop_size=(96, 64), photometric=0.0, scale_range=(0.7, 1.4)
    )
    gen = torch.Generator().manual_seed(0)
    seen = 0
    for _ in range(20):
        out, xyxy, labels = augment(img, boxes, torch.tensor([2]), settings, gen)
        assert out.shape == (1, 64, 96)
        if len(xyxy):
            seen += 1
            x0, y0, x1, y1 = xyxy[0].round().int().tolist()
            assert labels.tolist() == [2]
            assert out[0, y0:y1, x0:x1].mean() > 0.9, "box content is the rectangle"
            ys, xs = (out[0] > 0.5).nonzero(as_tuple=True)
            assert xs.min() >= x0 - 1 and xs.max() <= x1 and ys.min() >= y0 - 1 and ys.max() <= y1, (
                "and only it"
            )
    assert seen >= 10
    a = augment(img, boxes, torch.tensor([2]), settings, torch.Generator().manual_seed(3))
    b = augment(img, boxes, torch.tensor([2]), settings, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]), "deterministic given the seed"


def test_detector_overfits_one_image_and_finds_its_boxes() -> None:
    img = torch.full((1, 64, 96), 0.2)
    img[:, 12:44, 10:26] = 0.9  # a tall "person"
    img[:, 36:60, 50:90] = 0.6  # a wide "car"
    boxes = torch.tensor([[10 / 96, 12 / 64, 26 / 96, 44 / 64], [50 / 96, 36 / 64, 90 / 96, 60 / 64]])
    labels = torch.tensor([0, 2])
    settings = TrainSettings(
        image_size=(96, 64),
        epochs=100,
        batch_size=1,
        width=8,
        lr=5e-3,
        warmup_epochs=2,
        scale_range=(1.0, 1.0),
        hflip=0.0,
        photometric=0.0,
    )
    model, history = train_detector([img], [boxes], [labels], 3, settings, seed=0, device=torch.device("cpu"))
    assert history[-1] < 0.2 * history[0]
    xyxy, scores, cls = predict(model, [img], torch.device("cpu"))[0]
    gts = {"x": Boxes(labels=labels, xyxy=boxes)}
    result = mean_average_precision(gts, {"x": (xyxy, scores, cls)}, {"x": (96, 64)}, MSRS_CLASSES)
    assert result["map50"] == pytest.approx(1.0)
    assert scores[0] > 0.5


def test_detector_same_seed_same_weights_and_any_input_size() -> None:
    torch.manual_seed(1)
    a = CenterNetDetector(width=8)
    torch.manual_seed(1)
    b = CenterNetDetector(width=8)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    out = a.eval()(torch.rand(2, 1, 100, 130))
    assert out["heatmap"].shape == (2, 3, 25, 33) and out["size"].shape == (2, 2, 25, 33)


# ------------------------------------------------------------------------------------------------- mAP
def test_map_is_one_for_perfect_and_lower_for_shifted_boxes() -> None:
    gts = {
        "a": Boxes(torch.tensor([0, 2]), torch.tensor([[0.1, 0.1, 0.2, 0.3], [0.5, 0.5, 0.9, 0.8]])),
        "b": Boxes(torch.tensor([1]), torch.tensor([[0.3, 0.4, 0.4, 0.6]])),
        "c": Boxes(torch.tensor([], dtype=torch.int64), torch.zeros(0, 4)),
    }
    frames = {s: (640, 480) for s in gts}
    perfect = {s: (g.xyxy, torch.ones(len(g)), g.labels) for s, g in gts.items()}
    res = mean_average_precision(gts, perfect, frames, MSRS_CLASSES)
    assert res["map"] == pytest.approx(1.0) and res["map50"] == pytest.approx(1.0)
    assert res["per_class"]["car"]["num_gt"] == 1

    shifted = {
        s: (g.xyxy + torch.tensor([0.02, 0.0, 0.02, 0.0]), torch.ones(len(g)), g.labels)
        for s, g in gts.items()
    }
    res_shift = mean_average_precision(gts, shifted, frames, MSRS_CLASSES)
    assert res_shift["map"] < 0.9
    assert res_shift["per_class"]["person"]["ap"] < res_shift["per_class"]["car"]["ap"], (
        "small boxes suffer more"
    )

    wrong_class = {s: (g.xyxy, torch.ones(len(g)), (g.labels + 1) % 3) for s, g in gts.items()}
    assert mean_average_precision(gts, wrong_class, frames, MSRS_CLASSES)["map50"] == pytest.approx(0.0)
    assert mean_average_precision(gts, {}, frames, MSRS_CLASSES)["map50"] == 0.0

    no_bicycle = {s: g for s, g in gts.items() if s != "b"}
    res_nb = mean_average_precision(no_bicycle, perfect, frames, MSRS_CLASSES)
    assert math.isnan(res_nb["per_class"]["bicycle"]["ap"]) and res_nb["map"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------- end to end
def _tiny_args(out: Path, msrs: Path) -> list[str]:
    return [
        "--preset",
        "tiny",
        "--root",
        str(msrs),
        "--split",
        str(SPLIT_FILE),
        "--out",
        str(out),
        "--limit-train",
        "6",
        "--limit-test",
        "3",
        "--epochs",
        "1",
        "--device",
        "cpu",
    ]


@pytest.mark.data
def test_dock_command_end_to_end_on_real_pairs(
    tmp_path: Path, msrs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IR, VIS, an on-the-fly baseline, a fused folder and a checkpoint; tables and figures come out and parse."""
    import stfuse
    import stfuse.baselines

    calls: list[tuple[int, ...]] = []

    def fake_baseline(name: str, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        assert name == "avg" and ir.shape == vi.shape and ir.shape[:2] == (1, 1)
        calls.append(tuple(ir.shape))
        return (ir + vi) / 2

    monkeypatch.setattr(stfuse.baselines, "fuse_baseline", fake_baseline, raising=False)

    class FakeFuser:
        """Stands in for stfuse.Fuser: colour out when the visible image is colour, as the real one does."""

        @classmethod
        def from_checkpoint(cls, path: str) -> FakeFuser:
            assert Path(path).name == "net.ckpt"
            return cls()

        def fuse(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
            assert ir.shape[:2] == (1, 1) and vi.shape[:2] == (1, 3)
            calls.append(tuple(vi.shape))
            return torch.maximum(ir.expand_as(vi), vi)

    monkeypatch.setattr(stfuse, "Fuser", FakeFuser, raising=False)
    ckpt = tmp_path / "net.ckpt"
    ckpt.write_bytes(b"weights")
    split = load_split(SPLIT_FILE)
    fused_dir = tmp_path / "maxfused"
    for stem in [*limit_stems(split.train, 6), *limit_stems(split.test, 3)]:  # written by "another method"
        ir, vi = read_image(msrs / "ir" / f"{stem}.png"), read_image(msrs / "vi" / f"{stem}.png")
        write_image(fused_dir / f"{stem}.png", np.maximum(ir, vi.mean(axis=2, keepdims=True)))

    out = tmp_path / "dock"
    args = _tiny_args(out, msrs) + [
        "--baseline",
        "avg",
        "--fused",
        f"max={fused_dir}",
        "--ckpt",
        f"net={ckpt}",
    ]
    assert dock_main(args) == 0
    for name in ("results.md", "results.json", "map_per_class.png", "detections.png"):
        assert (out / name).stat().st_size > 0
    assert len(calls) == 18 and len(list((out / "cache" / "avg").glob("*.png"))) == 9, "fused once, cached"

    data = json.loads((out / "results.json").read_text())
    assert list(data["sources"]) == ["ir", "vi", "avg", "max", "net"]
    assert len(list((out / "cache" / "net").glob("*.png"))) == 9
    assert data["num_train"] == 6 and data["num_test"] == 3
    for source in data["sources"].values():
        for run in source["runs"]:
            for value in [run["map"], run["map50"], *(c["ap50"] for c in run["per_class"].values())]:
                assert value is None or 0.0 <= value <= 1.0  # None: a class without test boxes
    table = (out / "results.md").read_text().split("\n\n")[0]  # the main table; paired differences follow
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["ir", "vi", "avg", "max", "net"]
    numbers = [float(x) for r in rows[1:] for x in re.findall(r"\d+\.\d+", r)]
    assert numbers and all(0.0 <= x <= 1.0 for x in numbers)
    assert "Paired difference in mAP@0.5" in (out / "results.md").read_text()

    # a second call reuses every stored run and the cache, and rebuilds the same table
    calls.clear()
    before = (out / "results.md").read_text()
    assert dock_main(args) == 0
    assert calls == [] and (out / "results.md").read_text() == before

    # the same files with new modification times (a re-copied data folder): still reused
    for path in [ckpt, *fused_dir.glob("*.png")]:
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**12))
    assert dock_main(args) == 0
    assert calls == [] and (out / "results.md").read_text() == before

    # new weights under the same path: the checkpoint's images are fused again and its runs retrained
    ckpt.write_bytes(b"other weights")
    assert dock_main(args) == 0
    assert len(calls) == 9
    rerun = json.loads((out / "runs" / "net" / "seed0.json").read_text())
    assert rerun["key"] != data["sources"]["net"]["runs"][0]["key"]


@pytest.mark.data
def test_same_seed_gives_identical_results(tmp_path: Path, msrs: Path) -> None:
    config = DockingConfig.preset(
        "tiny", limit_train=4, limit_test=2, epochs=1, device="cpu", num_qualitative=0
    )
    kwargs = {"config": config, "data_root": msrs, "split_path": SPLIT_FILE, "log": lambda _: None}
    a = run_docking([SourceSpec("vi", "dataset")], tmp_path / "a", **kwargs)
    b = run_docking([SourceSpec("vi", "dataset")], tmp_path / "b", **kwargs)
    assert a["sources"]["vi"]["runs"][0]["loss_history"] == b["sources"]["vi"]["runs"][0]["loss_history"]


@pytest.mark.data
def test_dock_reports_bad_input_clearly(
    tmp_path: Path, msrs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    split = load_split(SPLIT_FILE)
    partial = tmp_path / "partial"
    for stem in split.train[:3]:
        write_image(partial / f"{stem}.png", read_image(msrs / "ir" / f"{stem}.png"))
    assert (
        dock_main(_tiny_args(tmp_path / "o1", msrs) + ["--sources", "ir", "--fused", f"part={partial}"]) == 2
    )
    err = capsys.readouterr().err
    assert "source 'part'" in err and "lacks" in err and "stem(s)" in err

    assert dock_main(_tiny_args(tmp_path / "o2", msrs) + ["--fused", "noequals"]) == 2
    assert "expects NAME=PATH" in capsys.readouterr().err

    bad_labels = tmp_path / "data"
    (bad_labels / "label" / "fusion").mkdir(parents=True)
    (bad_labels / "ir").symlink_to(msrs / "ir")
    (bad_labels / "vi").symlink_to(msrs / "vi")
    for stem in [*split.train, *split.test]:
        (bad_labels / "label" / "fusion" / f"{stem}.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    stem = split.test[0]
    (bad_labels / "label" / "fusion" / f"{stem}.txt").write_text("0 0.5 0.5 0.1 0.1\n7 0.5 0.5 0.1 0.1\n")
    args = _tiny_args(tmp_path / "o3", bad_labels)
    args[args.index("--limit-test") + 1] = "30"
    assert dock_main(args) == 2
    assert f"{stem}.txt:2: class id 7 is out of range" in capsys.readouterr().err

    with pytest.raises(DockingError, match="source names must be unique"):
        run_docking(
            [SourceSpec("ir", "dataset"), SourceSpec("ir", "dataset")],
            tmp_path / "o4",
            DockingConfig.preset("tiny"),
            data_root=msrs,
            split_path=SPLIT_FILE,
        )


def test_dock_refuses_the_removed_data_root_option_through_the_console_script(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    stfuse = Path(sys.executable).parent / "stfuse"
    done = subprocess.run(
        [str(stfuse), "dock", "--data-root", str(tmp_path), "--out", str(tmp_path / "out")],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "stfuse dock: error: unrecognized arguments: --data-root " + str(tmp_path)
    )
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()

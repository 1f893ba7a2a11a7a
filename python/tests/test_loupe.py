"""The Python package against the `loupe` CLI on the committed Magnetic-Tile fixtures, and its handling of arrays
and errors. Needs the package installed (`pip install ./python`) and the CLI built; `LOUPE_CLI` names it (default
`target/debug/loupe`)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

import loupe

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "mvtec-mini"
IMAGES = sorted(p for d in ("blowhole", "crack", "uneven", "good") for p in (FIXTURES / d).glob("*.png"))


@pytest.fixture(scope="session")
def engine() -> loupe.Engine:
    return loupe.Engine()


@pytest.fixture(scope="session")
def cli_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CLI's outputs on the fixture images, with the embedded default model."""
    cli = Path(os.environ.get("LOUPE_CLI", REPO / "target" / "debug" / "loupe"))
    if not cli.is_file():
        pytest.fail(f"no loupe CLI at {cli} (cargo build -p loupe-cli, or set LOUPE_CLI)")
    out = tmp_path_factory.mktemp("cli")
    subprocess.run([str(cli), "inspect", *map(str, IMAGES), "--out", str(out)], check=True, capture_output=True)
    return out


def pixels(path: Path) -> npt.NDArray[np.uint8]:
    """The image as PIL reads it: (H, W) for gray files, (H, W, 3) for colour ones."""
    with Image.open(path) as im:
        return np.asarray(im.convert("L") if im.mode in ("L", "I;16", "P") else im.convert("RGB"))


def test_the_fixtures_are_there() -> None:
    assert len(IMAGES) == 13, IMAGES


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_results_equal_the_clis(engine: loupe.Engine, cli_out: Path, path: Path) -> None:
    expected = json.loads((cli_out / f"{path.stem}.json").read_text())
    r = engine.inspect(pixels(path))
    assert abs(r.pred_score - expected["score"]) <= 1e-6
    assert r.pred_label == (expected["label"] == "anomalous")
    assert r.image_type == expected["image_type"]
    assert r.thresholds["image"] == pytest.approx(expected["thresholds"]["image"], abs=1e-6)
    regions = [(list(g.bbox), g.area, g.defect_type) for g in r.regions]
    assert regions == [(e["bbox"], e["area"], e["defect_type"]) for e in expected["regions"]]
    mask = np.asarray(Image.open(cli_out / f"{path.stem}_mask.png")) != 0
    assert r.pred_mask.shape == mask.shape and np.array_equal(r.pred_mask, mask)
    assert r.anomaly_map.shape == mask.shape and r.anomaly_map.dtype == np.float32
    assert r.type_map.dtype == np.uint16 and np.array_equal(r.type_map != 0, r.pred_mask)
    # The JSON Python writes is the CLI's, but for the file names of the written pictures.
    mine = json.loads(r.to_json(expected["image"]))
    for key in ("score", "label", "image_type", "regions", "thresholds"):
        assert mine[key] == expected[key], key


def test_file_batch_and_array_layouts_give_the_same_result(engine: loupe.Engine) -> None:
    path = next(p for p in IMAGES if "crack" in str(p))
    gray = pixels(path)
    one = engine.inspect(gray)
    assert one.pred_score == engine.inspect_file(path).pred_score
    # A ROI of a larger canvas (row stride > width) and a Fortran-ordered copy read as the same image.
    canvas = np.zeros((gray.shape[0] + 9, gray.shape[1] + 13), np.uint8)
    canvas[4 : 4 + gray.shape[0], 6 : 6 + gray.shape[1]] = gray
    roi = canvas[4 : 4 + gray.shape[0], 6 : 6 + gray.shape[1]]
    assert not roi.flags.c_contiguous
    for variant in (roi, np.asfortranarray(gray), gray[:, :, None]):
        r = engine.inspect(variant)
        assert r.pred_score == one.pred_score and np.array_equal(r.anomaly_map, one.anomaly_map)
    # Colour in either channel order, and 12-bit gray, as Loupe reads them.
    rgb = np.stack([gray] * 3, axis=-1)
    assert engine.inspect(rgb).pred_score == one.pred_score
    assert engine.inspect(np.ascontiguousarray(rgb[:, :, ::-1]), format="bgr").pred_score == one.pred_score
    gray12 = (gray.astype(np.uint16) << 4).astype(np.uint16)
    assert engine.inspect(gray12, bits=12).pred_score == one.pred_score
    # A batch runs the model on a stacked input: equal within float rounding, not bit for bit.
    batch = engine.inspect_batch([gray, rgb, roi])
    assert len(batch) == 3 and all(abs(b.pred_score - one.pred_score) <= 1e-6 for b in batch)


def test_bad_arrays_and_files_raise_loupe_errors_naming_the_problem(engine: loupe.Engine, tmp_path: Path) -> None:
    # Some calls break the stubs on purpose: these are the inputs a caller without a type checker can pass.
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: engine.inspect(np.zeros((8, 8), np.float32)), "uint8"),  # type: ignore[arg-type]
        (lambda: engine.inspect(np.zeros((2, 8, 8, 3), np.uint8)), "shape"),
        (lambda: engine.inspect(np.zeros((8, 8, 2), np.uint8)), "channels"),
        (lambda: engine.inspect(np.zeros((8, 8), np.uint8), format="bgr"), "bgr"),
        (lambda: engine.inspect(np.zeros((8, 8, 3), np.uint8), format="yuv"), "yuv"),  # type: ignore[arg-type]
        (lambda: engine.inspect(np.zeros((0, 8), np.uint8)), "height 0"),
        (lambda: engine.inspect(np.zeros((8, 8), np.uint16), bits=7), "9 to 16"),
        (lambda: engine.inspect_batch([np.zeros((8, 8), np.uint8), "not an image"]), "images[1]"),  # type: ignore[list-item]
        (lambda: engine.inspect_file(tmp_path / "missing.png"), "missing.png"),
    ]
    for call, needle in cases:
        with pytest.raises(loupe.LoupeError) as e:
            call()
        assert needle in str(e.value), (needle, str(e.value))
    bad = tmp_path / "bad.toml"
    bad.write_text("[postprocess]\nsmoothing_sigma = -2\n")
    with pytest.raises(loupe.LoupeError) as e:
        loupe.Engine(bad)
    assert "bad.toml" in str(e.value) and "postprocess.smoothing_sigma" in str(e.value)
    assert issubclass(loupe.LoupeError, Exception)


def test_settings_and_vocabulary_reach_the_engine(engine: loupe.Engine) -> None:
    gray = pixels(IMAGES[0])
    strict = loupe.Engine(image_threshold=1.0)
    assert not strict.inspect(gray).pred_label and strict.inspect(gray).thresholds["image"] == 1.0
    words = loupe.Engine(defects=["scratch", "burr"])
    assert words.classes == ["normal", "scratch", "burr"]
    assert set(words.inspect(gray).class_probabilities) == {"normal", "scratch", "burr"}
    assert engine.classes[0] == "normal" and engine.info["profile"] is None
    assert "backbone" in engine.info and loupe.__version__


def test_the_gil_is_released_while_the_model_runs(engine: loupe.Engine) -> None:
    images = [pixels(p) for p in IMAGES[:8]]
    started = time.perf_counter()
    engine.inspect_batch(images)
    took = time.perf_counter() - started
    worker = threading.Thread(target=engine.inspect_batch, args=(images,))
    worker.start()
    time.sleep(took / 4)
    # This thread can run Python while the other is inside the call only if the call released the GIL.
    alive_before = worker.is_alive()
    spins = sum(1 for _ in range(10_000))
    alive_after = worker.is_alive()
    worker.join()
    assert spins == 10_000 and alive_before and alive_after, f"batch took {took:.3f} s"

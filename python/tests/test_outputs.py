"""`Engine.inspect_file(out=...)` writes what `loupe inspect` writes, and the Ray Data example's worker
(examples/python/ray_inspect.py, run here without Ray) lists, names and writes images as the CLI does."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

import loupe

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "mvtec-mini"


def cli() -> Path:
    path = Path(os.environ.get("LOUPE_CLI", REPO / "target" / "debug" / "loupe"))
    if not path.is_file():
        pytest.fail(f"no loupe CLI at {path} (cargo build -p loupe-cli, or set LOUPE_CLI)")
    return path


@pytest.fixture(scope="module")
def ray_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ray_inspect", REPO / "examples" / "python" / "ray_inspect.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_inspect_file_writes_the_clis_four_files(tmp_path: Path) -> None:
    image = sorted((FIXTURES / "crack").glob("*.png"))[0]
    cli_out, py_out = tmp_path / "cli", tmp_path / "py"
    py_out.mkdir()
    subprocess.run([str(cli()), "inspect", str(image), "--out", str(cli_out)], check=True, capture_output=True)
    r = loupe.Engine().inspect_file(image, out=py_out)
    names = sorted(p.name for p in cli_out.iterdir())
    assert names == sorted(p.name for p in py_out.iterdir()) and len(names) == 4
    for name in names:
        a, b = cli_out / name, py_out / name
        if name.endswith(".json"):
            assert json.loads(a.read_text()) == json.loads(b.read_text()), name
        else:
            assert a.read_bytes() == b.read_bytes(), name
    assert json.loads((py_out / f"{image.stem}.json").read_text())["score"] == pytest.approx(r.pred_score, abs=1e-6)


def test_inspect_file_names_a_missing_output_folder(tmp_path: Path) -> None:
    image = sorted((FIXTURES / "good").glob("*.png"))[0]
    with pytest.raises(loupe.LoupeError, match="heatmap.png"):
        loupe.Engine().inspect_file(image, out=tmp_path / "missing", stem="x")


def test_the_ray_worker_writes_what_the_cli_writes(ray_example: ModuleType, tmp_path: Path) -> None:
    # Two inputs holding same-named files exercise the `-2` stems; the order is the CLI's.
    inputs = [str(FIXTURES / "good"), str(FIXTURES / "crack"), str(sorted((FIXTURES / "good").glob("*.png"))[0])]
    images = ray_example.collect_images(inputs)
    stems = ray_example.unique_stems(images)
    assert stems[-1].endswith("-2"), stems
    cli_out, ray_out = tmp_path / "cli", tmp_path / "ray"
    ray_out.mkdir()
    subprocess.run([str(cli()), "inspect", *inputs, "--out", str(cli_out)], check=True, capture_output=True)
    worker = ray_example.Inspector(str(ray_out), {})
    # Two batches in the reverse order: where and when an image runs must not change its files.
    half = len(images) // 2
    rows = worker({"path": images[half:], "stem": stems[half:]})
    rows_first = worker({"path": images[:half], "stem": stems[:half]})
    assert not any(rows["error"]) and not any(rows_first["error"])
    assert ray_example.compare_outputs(cli_out, ray_out) == []
    names = [json.loads((cli_out / f"{s}.json").read_text())["image"] for s in stems]
    assert names == images, "the CLI lists the same images in the same order"


def test_compare_outputs_finds_each_kind_of_difference(ray_example: ModuleType, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x.json").write_text('{"score": 0.5}')
    (b / "x.json").write_text('{"score": 0.25}')
    (a / "x_mask.png").write_bytes(b"\x01")
    (b / "x_mask.png").write_bytes(b"\x02")
    (a / "only.png").write_bytes(b"")
    problems = ray_example.compare_outputs(a, b)
    assert len(problems) == 3 and "only.png" in problems[0], problems


def test_a_bad_image_fails_alone_in_the_worker(ray_example: ModuleType, tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    good = sorted((FIXTURES / "good").glob("*.png"))[0]
    rows = ray_example.Inspector(str(tmp_path), {})({"path": [str(bad), str(good)], "stem": ["bad", "good"]})
    assert "bad.png" in rows["error"][0] and rows["error"][1] == ""
    assert (tmp_path / "good.json").is_file() and not (tmp_path / "bad.json").exists()

"""DAPO training: losses, hybrid prompts = the bank's prompts, determinism, checkpoint resume, the trained
parity fixture."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("open_clip")

import torch.nn.functional as F  # noqa: E402

from fixture_check import assert_fixture_matches  # noqa: E402
from loupe_tools.reference import DapoReference  # noqa: E402
from loupe_tools.tokenizer import clip_encode  # noqa: E402
from loupe_tools.train import make_trained_fixture  # noqa: E402
from loupe_tools.train.batches import BatchSampler  # noqa: E402
from loupe_tools.train.dataset import defect_words, list_samples, preload  # noqa: E402
from loupe_tools.train.export_trained import freeze_backbone  # noqa: E402
from loupe_tools.train.loop import train_stage  # noqa: E402
from loupe_tools.train.losses import dapo_loss, dice_loss, focal_loss, patch_targets  # noqa: E402
from loupe_tools.train.optimize import check_dapo_parts, prompt_stage  # noqa: E402
from loupe_tools.train.prompt_learner import HybridPrompts  # noqa: E402
from loupe_tools.train.recipe import build_model  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "tests" / "fixtures" / "mvtec-mini"
TRAINED = REPO / "tests" / "fixtures" / "parity-trained"


def test_focal_with_gamma_zero_is_cross_entropy() -> None:
    logits = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    target = torch.randint(0, 4, (2, 3, 3), generator=torch.Generator().manual_seed(1))
    got = focal_loss(logits.softmax(1), target, gamma=0.0)
    torch.testing.assert_close(got, F.cross_entropy(logits, target), atol=1e-5, rtol=1e-5)
    assert focal_loss(logits.softmax(1), target, gamma=2.0) < got  # focusing down-weights easy pixels


def test_dice_is_zero_for_a_perfect_prediction_and_one_for_a_disjoint_one() -> None:
    mask = torch.zeros(1, 8, 8)
    mask[0, 2:5, 2:5] = 1
    assert float(dice_loss(mask, mask, smooth=0.0)) == pytest.approx(0.0)
    assert float(dice_loss(1 - mask, mask, smooth=0.0)) == pytest.approx(1.0)


def test_a_patch_takes_the_type_of_any_defect_pixel_it_holds() -> None:
    type_map = torch.zeros(1, 16, 16, dtype=torch.long)
    type_map[0, 9, 1] = 3  # one pixel in patch (row 1, col 0) of a 2 x 2 grid of 8 px patches
    grid = patch_targets(type_map, (2, 2))
    assert grid.tolist() == [[[0, 0], [3, 0]]]


def _tiny() -> tuple[torch.nn.Module, HybridPrompts]:
    model = build_model("tiny", 0)
    return model, HybridPrompts(model, clip_encode, ["hole", "scratch"], groups=3, seed=0)


def test_training_prompts_are_the_exported_banks_prompts() -> None:
    model, prompts = _tiny()
    with torch.no_grad():
        prompts.normal_context.add_(0.3)  # move away from the init so nothing matches by accident
        trained = prompts.features(model).numpy()
    bank = prompts.to_bank("0" * 16, model.arch.embed_dim, "test")
    ref = DapoReference(model, {"image": {}}, bank, model.token_embedding.weight.detach().numpy())
    np.testing.assert_allclose(trained, ref.text_features(["hole", "scratch"]), atol=1e-5)


def test_the_loss_falls_on_a_fixed_batch_and_only_dapo_parts_train() -> None:
    torch.manual_seed(0)
    model, prompts = _tiny()
    frozen = {k: v.clone() for k, v in model.state_dict().items()}
    assert freeze_backbone(model) > 0
    opt = torch.optim.Adam([p for p in list(model.parameters()) + list(prompts.parameters()) if p.requires_grad], 1e-2)
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    type_map = torch.zeros(4, 64, 64, dtype=torch.long)
    type_map[:2, 10:30, 10:30] = 1
    labels = torch.tensor([1, 1, 0, 0])
    losses = []
    for _ in range(15):
        g, p = model.encode_image(images)
        loss, _ = dapo_loss(g, p, prompts.features(model), model.visual.grid, type_map, labels, pixel_level=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    for k, v in model.state_dict().items():
        changed = not torch.equal(v, frozen[k])
        assert changed == (k == "visual.deep_prompts" or k.startswith("visual.adapters.")), k


def _mini_run(folder: Path, steps: int) -> dict[str, torch.Tensor]:
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    model, _ = _tiny()
    freeze_backbone(model)
    samples = list_samples(MINI)
    words = defect_words(samples)
    prompts = HybridPrompts(model, clip_encode, words, groups=2, seed=0)
    sampler = BatchSampler([preload(samples, 64, words)], [1.0], 4, seed=0)
    train_stage(model, prompts, sampler, replace(prompt_stage(4, lr=5e-3), steps=steps, checkpoint_every=1), folder)
    return {**model.state_dict(), **{f"prompts.{k}": v for k, v in prompts.state_dict().items()}}


def test_training_is_deterministic_and_a_resumed_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    straight = _mini_run(tmp_path / "a", 4)
    again = _mini_run(tmp_path / "b", 4)
    for k in straight:
        assert torch.equal(straight[k], again[k]), k
    # checkpoint every step; drop the last checkpoint's future by training 2 steps, then resume to 4
    _mini_run(tmp_path / "c", 2)
    ckpt = tmp_path / "c" / "prompts-last.pt"
    assert ckpt.exists()
    resumed = _mini_run(tmp_path / "c", 4)
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k], atol=0, rtol=0, msg=k)
    assert (tmp_path / "a" / "prompts-loss.csv").read_text().count("\n") == 5


def test_models_without_dapo_parts_are_refused(tmp_path: Path) -> None:
    from loupe_tools.archs import get_arch
    from loupe_tools.clip_model import LoupeClip

    with pytest.raises(ValueError, match="adapters"):
        check_dapo_parts(LoupeClip(get_arch("tiny")), tmp_path)


def test_regenerated_trained_fixture_matches_committed(tmp_path: Path) -> None:
    if not (TRAINED / "expected.safetensors").exists():
        pytest.skip("no trained parity fixture")
    out = tmp_path / "trained"
    make_trained_fixture.main(["--out", str(out)])
    assert_fixture_matches(out, TRAINED, trained=True)

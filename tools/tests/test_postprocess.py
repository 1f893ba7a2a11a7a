"""Post-processing conventions (doc section 3) against hand computations."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from loupe_tools import postprocess as pp  # noqa: E402


def test_upsample_align_corners_by_hand() -> None:
    m = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    out = pp.upsample_bilinear(m, (3, 3))[0]
    want = torch.tensor([[0.0, 0.5, 1.0], [1.0, 1.5, 2.0], [2.0, 2.5, 3.0]])
    torch.testing.assert_close(out, want)
    out4 = pp.upsample_bilinear(torch.tensor([[[0.0, 3.0]]]), (1, 4))[0, 0]
    torch.testing.assert_close(out4, torch.tensor([0.0, 1.0, 2.0, 3.0]))  # x * (2 - 1) / (4 - 1), times 3


def test_gaussian_kernel_by_hand() -> None:
    w = pp.gaussian_kernel1d(1.0)
    assert w.numel() == 9  # radius ceil(4 * 1) = 4
    raw = [math.exp(-(x * x) / 2.0) for x in range(-4, 5)]
    want = torch.tensor([v / sum(raw) for v in raw], dtype=torch.float64)
    torch.testing.assert_close(w, want)
    assert pp.gaussian_kernel1d(0.3).numel() == 2 * 2 + 1  # ceil(1.2) = 2
    assert pp.gaussian_kernel1d(4.0).numel() == 33


def test_reflect_index_is_scipy_reflect() -> None:
    # scipy 'reflect' for [a b c]: ... c b a | a b c | c b a | a b c ...
    idx = pp.reflect_index(torch.arange(-6, 9), 3).tolist()
    assert idx == [0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1, 2]
    assert pp.reflect_index(torch.arange(-3, 4), 1).tolist() == [0] * 7


def test_gaussian_delta_at_border_by_hand() -> None:
    w = pp.gaussian_kernel1d(1.0)  # w[4 + d] = weight at distance d
    img = torch.zeros(5, 6, dtype=torch.float64)
    img[0, 0] = 1.0
    out = pp.gaussian_smooth(img, 1.0)

    def wd(d: int) -> float:  # weight at distance d, 0 beyond the radius
        return float(w[4 + d]) if abs(d) <= 4 else 0.0

    # 1-D response to a delta at index 0 with reflect: f(i) = w(i) + w(i + 1) (its mirror image sits at -1)
    f_rows = torch.tensor([wd(i) + wd(i + 1) for i in range(5)], dtype=torch.float64)
    f_cols = torch.tensor([wd(i) + wd(i + 1) for i in range(6)], dtype=torch.float64)
    torch.testing.assert_close(out, torch.outer(f_rows, f_cols))


def test_gaussian_constant_and_small_images() -> None:
    c = torch.full((3, 2), 2.5)
    torch.testing.assert_close(pp.gaussian_smooth(c, 2.0), c)  # radius 8 > size: reflection wraps repeatedly
    x = torch.arange(6.0).reshape(2, 3)
    torch.testing.assert_close(pp.gaussian_smooth(x, 0.0), x)


def test_class_maps_sum_layers_then_upsample() -> None:
    g = torch.Generator().manual_seed(0)
    patches = torch.randn(3, 4, 5, generator=g)  # L=3, G=2x2, D=5
    text = torch.nn.functional.normalize(torch.randn(3, 5, generator=g), dim=-1)
    grid = pp.grid_class_maps(patches, text, (2, 2))
    pn = torch.nn.functional.normalize(patches, dim=-1)
    manual = sum(torch.softmax(pn[l] @ text.T / 0.07, dim=-1) for l in range(3))  # [G, 3]
    torch.testing.assert_close(grid, manual.T.reshape(3, 2, 2))
    torch.testing.assert_close(grid.sum(0), torch.full((2, 2), 3.0))  # each layer's softmax sums to 1
    up = pp.upsample_bilinear(grid, (5, 5))
    per_layer = sum(pp.upsample_bilinear(torch.softmax(pn[l] @ text.T / 0.07, -1).T.reshape(3, 2, 2), (5, 5)) for l in range(3))
    torch.testing.assert_close(up, per_layer)  # bilinear is linear


def test_image_score_and_probs() -> None:
    text = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]), dim=-1)
    g = torch.nn.functional.normalize(torch.tensor([0.3, 0.7]), dim=-1)
    a = torch.nn.functional.normalize(text[1:].mean(0), dim=0)
    l0, l1 = float(g @ text[0]) / 0.07, float(g @ a) / 0.07
    want = math.exp(l1) / (math.exp(l0) + math.exp(l1))
    assert abs(float(pp.image_score(g, text)[0]) - want) < 1e-6
    probs = pp.image_probs(g, text)
    assert abs(float(probs.sum()) - 1) < 1e-6 and probs.shape == (3,)

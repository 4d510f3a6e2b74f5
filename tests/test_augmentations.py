"""Batched view augmentations (hf_ssl.data.transforms) and MultiViewCollator: shapes, value range, one random
draw per image, and the papers' probabilities measured as frequencies over large batches of tiny images."""

import pytest
import torch
from kornia.augmentation.container.params import ParamItem
from torch import nn

from hf_ssl.data.collators import MultiViewCollator
from hf_ssl.data.transforms import (blur_kernel_size, byol_augmentations, is_grayscale, multi_crop_augmentation,
                                   random_resized_crop_flip, simclr_augmentation)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def images(n: int, size: int) -> torch.Tensor:
    x = torch.rand(n, 3, size, size)
    x[:, :, 0, 0], x[:, :, -1, -1] = 0.0, 1.0  # the extremes of the range
    return x


def test_blur_kernel_is_odd_and_about_ten_percent():
    assert [blur_kernel_size(s) for s in (8, 16, 32, 96, 100, 224)] == [3, 3, 3, 9, 11, 23]  # 23 at 224: the paper's


def test_crops_of_least_area_one_keep_the_whole_image_and_flips_still_apply():
    x = images(64, 8)
    flipped = random_resized_crop_flip(8, min_scale=1.0)(x)
    unchanged = [torch.equal(a, b) for a, b in zip(flipped, x)]
    mirrored = [torch.equal(a, b.flip(-1)) for a, b in zip(flipped, x)]
    assert all(u or m for u, m in zip(unchanged, mirrored)) and any(unchanged) and any(mirrored)
    assert random_resized_crop_flip(8, min_scale=1.0, horizontal_flip=False) is None
    cropped = random_resized_crop_flip(8, min_scale=0.2, horizontal_flip=False)(x)
    # a crop of area 0.2-1 resamples most images (a draw of area near 1 can round to the whole 8 px image)
    assert sum(torch.equal(a, b) for a, b in zip(cropped, x)) < len(x) // 2


def test_shapes_and_value_range():
    x = images(16, 24)
    out = simclr_augmentation(16, blur_probability=1.0)(x)
    assert out.shape == (16, 3, 16, 16) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    for view in byol_augmentations(8)(x):  # a 3-pixel blur kernel on 8-pixel images
        assert view.shape == (16, 3, 8, 8) and view.min() >= 0 and view.max() <= 1
    views = multi_crop_augmentation(16, 8, num_local=3)(x)
    assert [tuple(v.shape) for v in views] == [(16, 3, 16, 16)] * 2 + [(16, 3, 8, 8)] * 3
    assert all(v.min() >= 0 and v.max() <= 1 for v in views)


@pytest.mark.parametrize("make", [lambda: [simclr_augmentation(12)], lambda: list(byol_augmentations(12)),
                                  lambda: list(multi_crop_augmentation(12, 6, num_local=1))])
def test_every_image_gets_its_own_draw(make):
    x = images(1, 16).expand(32, -1, -1, -1).contiguous()  # 32 copies of one image
    for transform in make():
        out = transform(x).flatten(1)
        assert torch.unique(out, dim=0).shape[0] == 32
        # and each op draws per image (the colour ops are also checked by frequency below)
        assert not any(getattr(op, "same_on_batch", False) for op in transform.modules())


def is_gray(x: torch.Tensor) -> torch.Tensor:
    return (x[:, 0] == x[:, 1]).all((1, 2)) & (x[:, 1] == x[:, 2]).all((1, 2))


def test_simclr_color_probabilities():
    # constant-colour images stay constant under crop, flip and blur, so the colour alone says what happened:
    # grayscale with p = 0.2; untouched (no jitter, p = 0.2, and no grayscale, p = 0.8) with p = 0.16. Colours in
    # [0.3, 0.4] keep the jitter (factors up to 1.8) from clamping channels to equal values.
    n = 4000
    colours = torch.rand(n, 3, 1, 1) * 0.1 + 0.3
    out = simclr_augmentation(8)(colours.expand(n, 3, 12, 12).contiguous())
    assert (out.amax((2, 3)) - out.amin((2, 3))).max() < 1e-5  # still constant
    untouched = (out[:, :, 0, 0] - colours[:, :, 0, 0]).abs().amax(1) < 1e-6
    assert abs(is_gray(out).float().mean().item() - 0.2) < 0.03  # sd 0.006
    assert abs(untouched.float().mean().item() - 0.16) < 0.03
    never_gray = simclr_augmentation(8, grayscale_probability=0.0)(colours[:500].expand(500, 3, 12, 12).contiguous())
    assert not is_gray(never_gray).any()


def test_a_gray_batch_takes_the_one_channel_path_with_the_full_pipelines_result():
    # BYOL's second view has every operation (crop, flip, jitter, grayscale, blur, solarisation). For the same draws
    # of the operations that can change a gray image, the one-channel pipeline gives what the full one gives on the
    # three equal channels: saturation 1 and hue 0 are the jitter's neutral factors, and grayscale is a no-op.
    view = byol_augmentations(16)[1]
    gray = images(64, 24)[:, :1].expand(-1, 3, -1, -1).contiguous()
    full = view.colour(gray)
    gray_names = iter(name for name, _ in view.gray.named_children())
    shared = []
    for item in view.colour._params:
        if item.name.startswith("RandomGrayscale"):
            continue
        data = dict(item.data)
        if item.name.startswith("ColorJitter"):
            data["saturation_factor"] = torch.ones_like(data["saturation_factor"])
            data["hue_factor"] = torch.zeros_like(data["hue_factor"])
        shared.append(ParamItem(next(gray_names), data))
    one_channel = view.gray(gray[:, :1], params=shared)
    torch.testing.assert_close(one_channel.expand(-1, 3, -1, -1), full, rtol=0, atol=1e-6)
    assert not torch.equal(full, gray[:, :, 4:20, 4:20])  # the view did change the images

    # The view itself: a gray batch goes through the one-channel pipeline and comes back gray with its channels; one
    # colour image sends the whole batch through the full pipeline
    calls = []
    view.colour.register_forward_hook(lambda *_: calls.append("colour"))
    view.gray.register_forward_hook(lambda *_: calls.append("gray"))
    out = view(gray)
    assert calls == ["gray"] and out.shape == (64, 3, 16, 16) and is_grayscale(out).all()
    mixed = gray.clone()
    mixed[0, 0] = 1.0 - mixed[0, 0]
    view(mixed)
    assert calls == ["gray", "colour"]
    assert "RandomGrayscale" not in {type(op).__name__ for op in view.gray.children()}


def checkerboard(n: int, size: int = 64, square: int = 12) -> torch.Tensor:
    """A gray board of 0.1 / 0.3 squares: never solarised (brightness <= 1.4 keeps it under 0.5), and no crop of
    it is magnified at 16 px output (squares of 3-10 px), so its edges stay sharp unless blurred."""
    i = torch.arange(size) // square
    return (((i[:, None] + i[None, :]) % 2) * 0.2 + 0.1).float().expand(n, 3, size, size).contiguous()


def smoothness(x: torch.Tensor) -> torch.Tensor:
    """Per image: energy of 1-pixel differences / energy of 2-pixel differences; 1/2 at sharp edges, down to 1/4
    for smooth ones. Independent of the contrast and of how many edges a crop holds."""
    x = x[:, 0]
    e1 = (x[:, :, 1:] - x[:, :, :-1]).pow(2).sum((1, 2)) + (x[:, 1:] - x[:, :-1]).pow(2).sum((1, 2))
    e2 = (x[:, :, 2:] - x[:, :, :-2]).pow(2).sum((1, 2)) + (x[:, 2:] - x[:, :-2]).pow(2).sum((1, 2))
    return e1 / e2.clamp_min(1e-12)


@pytest.mark.parametrize("views", ["byol", "multi_crop"])
def test_first_view_always_blurred_second_rarely(views):
    pair = byol_augmentations(16) if views == "byol" else multi_crop_augmentation(16, 8, num_local=0)
    x = checkerboard(600)
    # "blurred" = clearly smoother than a sharp edge; sigma ~ U(0.1, 2) and a small sigma hardly blurs, so a p = 1
    # blur shows in ~80% of the images (measured: 78-83% for p = 1.0, 7-11% for p = 0.1, 0-3% without blur)
    blurred = [(smoothness(view(x)) < 0.4).float().mean().item() for view in pair]
    assert blurred[0] > 0.6 and blurred[1] < 0.16


def test_multi_view_collator_normalises_and_stacks_batch_first():
    examples = [{"pixel_values": torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)} for _ in range(5)]
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    batch = MultiViewCollator(mean, std, [nn.Identity(), nn.Identity()])(examples)
    expected = (torch.stack([e["pixel_values"] for e in examples]).float() / 255
                - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert list(batch) == ["pixel_values"] and batch["pixel_values"].shape == (5, 2, 3, 8, 8)
    torch.testing.assert_close(batch["pixel_values"][:, 0], expected)
    torch.testing.assert_close(batch["pixel_values"][:, 1], expected)

    batch = MultiViewCollator(mean, std, byol_augmentations(6))(examples)  # a callable returning the views
    assert list(batch) == ["pixel_values"] and batch["pixel_values"].shape == (5, 2, 3, 6, 6)
    assert not torch.equal(batch["pixel_values"][:, 0], batch["pixel_values"][:, 1])
    batch = MultiViewCollator(mean, std, multi_crop_augmentation(6, 4, num_local=3))(examples)
    assert batch["pixel_values"].shape == (5, 2, 3, 6, 6) and batch["local_pixel_values"].shape == (5, 3, 3, 4, 4)
    with pytest.raises(ValueError, match="views must be"):
        MultiViewCollator(mean, std, [simclr_augmentation(6), simclr_augmentation(4), simclr_augmentation(6)])(examples)

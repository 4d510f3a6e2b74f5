"""CIE Lab colour in pure, batched torch, and the quantised ab space of colorization.

Colour space: sRGB (IEC 61966-2-1:1999: D65 white, the sRGB transfer curve) <-> CIE XYZ <-> CIE 1976 L*a*b*
(CIE 15:2004), with the constants scikit-image's `rgb2lab` / `lab2rgb` use (its 2-degree D65 white point
(0.95047, 1, 1.08883) and the rounded CIE constants 0.008856 / 7.787), so the two agree to float64 precision.
Images are (..., 3, H, W) tensors: channel dimension -3, any leading dimensions. The 3x3 colour matrices are applied
as elementwise products and sums, not matmuls, so bf16 autocast leaves them in the input's precision.

Quantised ab space (Zhang, Isola, Efros, "Colorful Image Colorization", ECCV 2016, Sec. 2.1): the ab plane cut
into `grid` x `grid` cells centred on multiples of `grid`; the output classes are the cells that hold colours of
the gamut. `ab_bins` computes them (nothing is downloaded), `soft_encode` turns a pixel's ab into the paper's
soft target over its nearest bins, and `annealed_mean` turns a predicted distribution back into one colour.
"""

from __future__ import annotations

import functools

import torch

# sRGB primaries with the D65 white: linear RGB -> XYZ (the matrix of scikit-image's `xyz_from_rgb`)
XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
D65_WHITE = (0.95047, 1.0, 1.08883)  # the XYZ of the D65 white, 2-degree observer
_EPSILON = 0.008856  # CIE: (6/29)^3, rounded as in the standard's tables
_KAPPA = 7.787  # CIE: (29/6)^2 / 3, rounded
_F_BREAK = 0.2068966  # (6/29): f(t) at t = _EPSILON, the break point of the inverse


def _matrix(rows, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


def _apply(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """matrix (3, 3) times the colour of every pixel of image (..., 3, H, W), as elementwise ops."""
    return (matrix[:, :, None, None] * image.unsqueeze(-4)).sum(dim=-3)


def _white(like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(D65_WHITE, dtype=like.dtype, device=like.device).view(3, 1, 1)


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    """The sRGB transfer curve, inverted: encoded values in [0, 1] -> linear light."""
    return torch.where(rgb > 0.04045, ((rgb.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    """Linear light -> sRGB-encoded values (not clipped: out-of-gamut colours leave [0, 1])."""
    return torch.where(linear > 0.0031308, 1.055 * linear.clamp(min=0.0031308) ** (1 / 2.4) - 0.055, linear * 12.92)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], (..., 3, H, W) -> CIE Lab: L in [0, 100], a and b roughly in [-128, 127]."""
    xyz = _apply(_matrix(XYZ_FROM_RGB, rgb), srgb_to_linear(rgb)) / _white(rgb)
    f = torch.where(xyz > _EPSILON, xyz.clamp(min=_EPSILON) ** (1 / 3), _KAPPA * xyz + 16 / 116)
    fx, fy, fz = f.unbind(dim=-3)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=-3)


def lab_to_linear_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIE Lab (..., 3, H, W) -> linear sRGB, unclipped: a colour is in the sRGB gamut iff every value is in [0, 1]."""
    lightness, a, b = lab.unbind(dim=-3)
    fy = (lightness + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], dim=-3)
    xyz = torch.where(f > _F_BREAK, f**3, (f - 16 / 116) / _KAPPA) * _white(lab)
    return _apply(torch.linalg.inv(_matrix(XYZ_FROM_RGB, lab).double()).to(lab.dtype), xyz)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIE Lab (..., 3, H, W) -> sRGB in [0, 1], out-of-gamut colours clipped (as scikit-image's `lab2rgb`)."""
    return linear_to_srgb(lab_to_linear_rgb(lab)).clamp(0.0, 1.0)


def lightness_to_rgb(lightness: torch.Tensor) -> torch.Tensor:
    """The gray sRGB image of a lightness channel (..., 1, H, W) -> (..., 3, H, W), three equal channels: the
    achromatic colour (L, 0, 0), whose linear sRGB is Y on every channel (sRGB's white is D65; the rounded matrix
    would leave the channels 1e-5 apart)."""
    fy = (lightness + 16) / 116
    luminance = torch.where(fy > _F_BREAK, fy**3, (fy - 16 / 116) / _KAPPA)
    return linear_to_srgb(luminance).clamp(0.0, 1.0).expand(*lightness.shape[:-3], 3, -1, -1)


# --- the quantised ab space -------------------------------------------------------------------------------------

# Sampling of the sRGB gamut behind `ab_bins`: the six faces of the RGB cube, each on a `_GAMUT_LEVELS`^2 grid. The
# map RGB -> Lab is one-to-one and continuous, so the gamut is a solid whose boundary is the image of the cube's
# surface, and every vertical line (fixed a, b) through the solid meets that boundary: the faces reach every (a, b)
# the whole cube reaches. 257 levels (steps of 1/256) give the same bins as 513 and as all 256^3 8-bit colours.
_GAMUT_LEVELS = 257


@functools.lru_cache(maxsize=None)
def _ab_bins(grid: int) -> torch.Tensor:
    levels = torch.linspace(0.0, 1.0, _GAMUT_LEVELS, dtype=torch.float64, device="cpu")
    u, v = (t.reshape(1, -1) for t in torch.meshgrid(levels, levels, indexing="ij"))
    faces = []
    for axis in range(3):  # the face where channel `axis` is 0, and where it is 1
        for value in (0.0, 1.0):
            others = [u, v]
            channels = [others.pop(0) if c != axis else torch.full_like(u, value) for c in range(3)]
            faces.append(torch.cat(channels))
    surface = torch.cat(faces, dim=1).unsqueeze(-1)  # (3, N, 1): an "image" N pixels high, 1 wide
    ab = rgb_to_lab(surface)[1:].reshape(2, -1)
    cells = torch.floor(ab / grid + 0.5).long()  # the nearest centre of every colour, in units of grid
    offset = int(cells.abs().max()) + 1
    size = 2 * offset + 1
    occupied = torch.bincount((cells[0] + offset) * size + cells[1] + offset, minlength=size * size).nonzero()[:, 0]
    a, b = occupied // size - offset, occupied % size - offset  # lexicographic (a, b) order
    return torch.stack([a, b], dim=1).to(torch.float64) * grid


def ab_bins(grid: int = 10) -> torch.Tensor:
    """(Q, 2) float64 centres (a, b) of the quantised ab space: the cells of side `grid`, centred on multiples of
    `grid`, that hold an sRGB colour (of any lightness), in lexicographic (a, b) order. Computed once per grid.

    A cell is kept when some sRGB colour has it as its nearest centre (cells [c - grid/2, c + grid/2)), so every
    pixel of every sRGB image has its nearest bin among them: for grid 10 that is 262 bins (a = -90..100,
    b = -110..90). The paper keeps 313 (its file `pts_in_hull.npy`, not derivable here): its set also holds cells no
    sRGB colour reaches, such as (a, b) = (-90, 50) (sRGB reaches a < -85 only near pure green, b ~ 83), so it is not
    the sRGB gamut on a 10-grid however finely sampled (this count converges to 262; with a lightness-by-lightness
    search, L in 0..100 and ab in steps of 0.5, to 260-262 depending on how cell borders count). The extra cells
    would be classes that no pixel ever has."""
    return _ab_bins(int(grid)).clone()


def soft_encode(ab: torch.Tensor, centres: torch.Tensor, num_neighbors: int = 5,
                sigma: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's soft-encoded targets (Sec. 2.1): each colour's `num_neighbors` nearest bins, weighted by a
    Gaussian of the distance to their centre (`sigma`, in ab units), normalised to sum to 1.

    ab (..., 2) -> (indices (..., K) long, nearest first; weights (..., K) summing to 1). The first index is the
    nearest bin: the most likely class of the target, whose rebalancing weight the loss uses."""
    distances = torch.cdist(ab.reshape(-1, 2).to(centres.dtype), centres)  # (N, Q)
    nearest, indices = distances.topk(num_neighbors, dim=1, largest=False)  # sorted: nearest first
    weights = torch.softmax(-nearest.square() / (2 * sigma**2), dim=1)  # Gaussian kernel, normalised
    return indices.reshape(*ab.shape[:-1], num_neighbors), weights.reshape(*ab.shape[:-1], num_neighbors)


def annealed_mean(log_probs: torch.Tensor, centres: torch.Tensor, temperature: float = 0.38,
                  dim: int = 1) -> torch.Tensor:
    """The paper's annealed-mean decoding (Sec. 2.3): f_T(z) = softmax(log z / T), ab = sum_q f_T(z)_q * centre_q.
    T = 1 is the mean (desaturated), T -> 0 the mode (vivid but patchy); the paper uses T = 0.38.

    log_probs: log-probabilities over the Q bins along `dim` (e.g. (B, Q, H, W)); returns the ab colour with the
    bin dimension replaced by (a, b) (e.g. (B, 2, H, W))."""
    annealed = torch.softmax(log_probs / temperature, dim=dim).movedim(dim, -1)
    return (annealed @ centres.to(annealed.dtype)).movedim(-1, dim)


__all__ = [
    "D65_WHITE", "XYZ_FROM_RGB", "ab_bins", "annealed_mean", "lab_to_linear_rgb", "lab_to_rgb", "lightness_to_rgb",
    "linear_to_srgb", "rgb_to_lab", "soft_encode", "srgb_to_linear",
]

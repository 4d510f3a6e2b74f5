"""A real image-text dataset that needs no network: the Noto Color Emoji glyphs rendered with Pillow, captioned
with their Unicode names ("hamburger", "high-speed train"). The name is an honest caption: it says what the
glyph depicts, and nothing more. Debian ships the font as `fonts-noto-color-emoji` (OFL)."""

from __future__ import annotations

import os
import unicodedata

import datasets
import numpy as np

from ..errors import HfSslError

NOTO_EMOJI_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
_FONT_FILE = os.path.basename(NOTO_EMOJI_FONT)
_BITMAP_SIZE = 109  # the only size of the font's colour bitmaps
_CANVAS = 136  # the glyphs are 136 px wide at that size
EMOJI_IMAGE_SIZE = 64
# Single code points of the pictographic blocks; sequences (flags, skin tones, ZWJ families) are left out because
# their names are not single Unicode names.
_EMOJI_RANGES = ((0x2600, 0x27C0), (0x1F300, 0x1F650), (0x1F680, 0x1F700), (0x1F900, 0x1FB00))
TEST_EVERY = 10  # every 10th emoji (in code point order) is held out as the test split


def find_emoji_font(data_dir: str | None = None) -> str | None:
    path = os.path.join(data_dir, _FONT_FILE) if data_dir else NOTO_EMOJI_FONT
    return path if os.path.isfile(path) else None


def render_emoji(image_size: int = EMOJI_IMAGE_SIZE, font_path: str = NOTO_EMOJI_FONT) -> tuple[np.ndarray, list[str]]:
    """(N, size, size, 3) uint8 RGB glyphs on white and their lower-case Unicode names."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_path, _BITMAP_SIZE)

    def draw(char: str) -> Image.Image:
        canvas = Image.new("RGBA", (_CANVAS, _CANVAS), (255, 255, 255, 0))
        ImageDraw.Draw(canvas).text((0, 0), char, font=font, embedded_color=True)
        return canvas

    missing = np.asarray(draw("\ue000"))  # a private-use code point: what the font draws for a glyph it lacks
    images, names = [], []
    for start, stop in _EMOJI_RANGES:
        for code_point in range(start, stop):
            char = chr(code_point)
            name = unicodedata.name(char, "")
            if not name:
                continue
            glyph = draw(char)
            pixels = np.asarray(glyph)
            if pixels[..., 3].max() == 0 or np.array_equal(pixels, missing):
                continue
            white = Image.new("RGB", glyph.size, (255, 255, 255))
            white.paste(glyph, mask=glyph.getchannel("A"))
            images.append(np.asarray(white.resize((image_size, image_size), Image.Resampling.BILINEAR)))
            names.append(name.lower())
    return np.stack(images), names


def load_emoji(data_dir: str | None = None) -> dict[str, datasets.Dataset]:
    """The rendered glyphs as `train` (90%) and `test` (every 10th) splits with `image` and `text` columns."""
    font = find_emoji_font(data_dir)
    if font is None:
        where = data_dir or os.path.dirname(NOTO_EMOJI_FONT)
        raise HfSslError(f"the emoji dataset needs {_FONT_FILE} in {where}: install the Debian package "
                         "fonts-noto-color-emoji or pass --data_dir DIR holding it")
    try:
        images, names = render_emoji(font_path=font)
    except OSError as e:
        raise HfSslError(f"cannot render emoji with {font}: {e}") from None
    features = datasets.Features({"image": datasets.Array3D(shape=images.shape[1:], dtype="uint8"),
                                  "text": datasets.Value("string")})
    is_test = np.arange(len(names)) % TEST_EVERY == TEST_EVERY - 1
    return {
        split: datasets.Dataset.from_dict(
            {"image": images[mask], "text": [n for n, m in zip(names, mask) if m]}, features=features)
        for split, mask in (("train", ~is_test), ("test", is_test))
    }

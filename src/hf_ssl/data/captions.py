"""Captions for image-text training when a dataset has labels but no text.

An honest caption says only what the label guarantees, so captions are prompt templates filled with the class
name (Radford et al. 2021, Sec. 3.1.4 and their ImageNet prompt list, from which these are taken). Evaluation
uses templates held out from training, so zero-shot accuracy measures transfer to unseen phrasings.
"""

from __future__ import annotations

TRAIN_TEMPLATES = (
    "a photo of a {}.", "a bad photo of a {}.", "a low resolution photo of a {}.", "a cropped photo of a {}.",
    "a bright photo of a {}.", "a dark photo of a {}.", "a close-up photo of a {}.", "a black and white photo of a {}.",
    "a blurry photo of a {}.", "a good photo of a {}.", "a photo of one {}.", "a jpeg corrupted photo of a {}.",
    "a pixelated photo of a {}.", "a photo of a small {}.", "a photo of a large {}.", "a picture of a {}.",
)  # fmt: skip
EVAL_TEMPLATES = (
    "itap of a {}.", "a rendition of a {}.", "a low resolution photo of the {}.", "a black and white photo of the {}.",
    "a close-up photo of the {}.", "a good photo of the {}.", "art of the {}.", "a {} in a video game.",
)  # fmt: skip

_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def prompt_name(class_name: str) -> str:
    """The class name as it reads in a sentence: lower case; a bare digit label becomes "digit seven"."""
    name = class_name.strip()
    if name.isdigit() and len(name) == 1:
        return f"digit {_DIGIT_WORDS[int(name)]}"
    return name.lower()


def template_captions(class_names: list[str], templates: tuple[str, ...] = TRAIN_TEMPLATES) -> list[list[str]]:
    """`captions[c][t]`: template t filled with class c's name."""
    return [[template.format(prompt_name(name)) for template in templates] for name in class_names]

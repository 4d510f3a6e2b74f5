"""Hostile inputs: each works, or ends in one clear `hf-ssl: error:` line with exit code 2 and nothing half-written.

Covered elsewhere: random bytes as an image and an image smaller than a patch (test_data), an unknown dataset or
method (test_data, test_cli), invalid hyperparameters (every method's tests), a locked OUT and a diverging run
(test_reliability). Image files are checked where they are decoded (`images_to_tensor`, the code every image method
runs); the failures that only the command shows (OUT, the disk, max_steps) through `hf-ssl pretrain`.
"""

import io
import resource
import struct
import time
import zlib

import datasets
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from conftest import run_cli
from hf_ssl.data.datasets import load_image_dataset
from hf_ssl.data.images import images_to_tensor
from hf_ssl.errors import HfSslError


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height RGB pixels, with almost no data behind it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _decode_folder(root, size: int = 8, channels: int = 3) -> dict[str, torch.Tensor]:
    dataset = load_image_dataset(f"imagefolder:{root}")
    train = dataset.splits["train"]
    names = [v["path"].rsplit("/", 1)[-1] for v in
             train.cast_column("image", datasets.Image(decode=False))["image"]]
    pixels = images_to_tensor(train, "image", image_size=size, num_channels=channels, min_size=1)
    return dict(zip(names, pixels))


def test_unusual_image_files_decode_as_a_viewer_shows_them(tmp_path):
    folder = tmp_path / "images" / "shirt"
    folder.mkdir(parents=True)
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1024 + 512)  # 16-bit values across the whole range
    Image.fromarray(ramp).save(folder / "gray16.png")
    Image.new("RGB", (8, 8), (200, 40, 90)).convert("CMYK").save(folder / "cmyk.jpg", quality=100)
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 10, 120, 250] + [0] * 762)
    palette.paste(0, (0, 0, 4, 8))  # the left half in the transparent palette entry
    palette.save(folder / "palette.png", transparency=0)
    upright = Image.new("RGB", (8, 16), (0, 0, 0))
    upright.paste((255, 255, 255), (0, 0, 8, 8))  # white on top
    exif = Image.Exif()
    exif[0x0112] = 3  # stored upside down: a viewer rotates it by 180 degrees
    upright.rotate(180).save(folder / "rotated.jpg", exif=exif, quality=100)
    Image.new("RGB", (1, 1), (7, 8, 9)).save(folder / "one_pixel.png")

    pixels = _decode_folder(tmp_path / "images", size=8)
    expected16 = torch.from_numpy(np.array(Image.fromarray((ramp / 257).round().astype(np.uint8)).resize(
        (8, 8), Image.BILINEAR)))
    assert torch.equal(pixels["gray16.png"][0], expected16)  # scaled to 8 bits, not clipped to white
    assert pixels["gray16.png"][0].float().std() > 50
    assert (pixels["cmyk.jpg"].float().mean(dim=(1, 2)) - torch.tensor([200.0, 40.0, 90.0])).abs().max() < 6
    assert (pixels["palette.png"][:, :, :3] == 255).all()  # transparent -> white, as at inference
    assert (pixels["palette.png"][:, :, 5:] == torch.tensor([10, 120, 250]).view(3, 1, 1)).all()
    viewed = ImageOps.exif_transpose(Image.open(folder / "rotated.jpg"))
    assert viewed.getpixel((4, 2))[0] > 200 and pixels["rotated.jpg"][0, 1, 4] > 200  # white on top, as viewed
    assert pixels["rotated.jpg"][0, 6, 4] < 50
    assert (pixels["one_pixel.png"] == torch.tensor([7, 8, 9]).view(3, 1, 1)).all()


@pytest.mark.parametrize("name, content, message", [
    ("truncated.png", "truncated", r"cannot read image .*truncated\.png: image file is truncated"),
    ("empty.png", b"", r"cannot read image .*empty\.png: cannot identify image file"),
    ("bomb.png", _png_header_only(50_000, 50_000), r"cannot read image .*bomb\.png: .*decompression bomb"),
])
def test_broken_image_files_fail_naming_the_file(tmp_path, name, content, message):
    folder = tmp_path / "images" / "shirt"
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "fine.png")
    if content == "truncated":
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "PNG")
        content = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    (folder / name).write_bytes(content)
    start = time.perf_counter()
    with pytest.raises(HfSslError, match=message):
        _decode_folder(tmp_path / "images")
    assert time.perf_counter() - start < 20  # the 50,000 x 50,000 header is refused, never decoded (7.5 GB)


def test_text_files_that_are_empty_or_not_utf8_fail_naming_the_problem(tmp_path):
    from hf_ssl.data.text import load_text_corpus

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("")
    with pytest.raises(HfSslError, match="the files hold no text"):
        load_text_corpus(f"text:{tmp_path}/empty/*.txt")
    (tmp_path / "empty" / "b.txt").write_text("  \n\n ")
    with pytest.raises(HfSslError, match=r"holds 0 non-blank paragraph\(s\)"):
        load_text_corpus(f"text:{tmp_path}/empty/*.txt")
    (tmp_path / "latin").mkdir()
    (tmp_path / "latin" / "fine.txt").write_text("plain words\n")
    (tmp_path / "latin" / "notes.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(HfSslError, match=r"notes\.txt is not UTF-8 text \(byte 0xe9 at offset 3\)"):
        load_text_corpus(f"text:{tmp_path}/latin/*.txt")
    (tmp_path / "random").mkdir()
    (tmp_path / "random" / "noise.txt").write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(HfSslError, match="is not UTF-8 text"):
        load_text_corpus(f"text:{tmp_path}/random/*.txt")


def test_a_hub_dataset_id_while_offline_fails_in_one_line():
    with pytest.raises(HfSslError, match="cannot load dataset 'someorg/no-such-dataset'.*(offline|Offline)"):
        load_image_dataset("someorg/no-such-dataset")


def _one_error_line(result) -> str:
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("hf-ssl: error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


TINY = ["pretrain", "--method", "simclr", "--preset", "tiny", "--backbone", "resnet-test", "--eval_protocols", "none"]


def test_bad_output_places_and_max_steps_zero_fail_before_training(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    message = _one_error_line(run_cli(*TINY, "--max_steps", "1", "--output_dir", str(tmp_path / "a_file" / "out")))
    assert "cannot create --output_dir" in message and "Not a directory" in message
    message = _one_error_line(run_cli(*TINY, "--max_steps", "0", "--output_dir", str(tmp_path / "zero")))
    assert "--max_steps 0 trains nothing" in message and not (tmp_path / "zero").exists()


def test_a_disk_that_fills_up_during_the_export_leaves_no_half_written_export(tmp_path):
    """A 20 kB file-size limit (the weights are larger): writing them fails with EFBIG, as on a full disk."""
    import subprocess
    import sys

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    out = tmp_path / "out"
    # No DataLoader worker: the limit applies to the shared-memory files through which a worker hands its batches
    # over too, and a worker that cannot write one leaves the training waiting for that batch (not a disk's failure).
    result = subprocess.run([sys.executable, "-m", "hf_ssl.cli", *TINY, "--max_steps", "1", "--save_strategy", "no",
                             "--dataloader_num_workers", "0", "--output_dir", str(out)], capture_output=True,
                            text=True, preexec_fn=limit_file_size, timeout=300)
    message = _one_error_line(result)
    assert "cannot write" in message and "File too large" in message
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []  # OUT is removed when only the lock is left
    assert "model.safetensors" not in left and "ssl" not in left and not [n for n in left if n.startswith(".export")]


def test_one_example_of_one_class_in_a_path_with_spaces_and_non_ascii_trains(tmp_path):
    folder = tmp_path / "my data é漢" / "only class"
    folder.mkdir(parents=True)
    Image.new("RGB", (16, 16), (90, 30, 200)).save(folder / "the only image.png")
    out = tmp_path / "out é漢 x"
    result = run_cli(*TINY, "--dataset", f"imagefolder:{folder.parent}", "--max_steps", "2",
                     "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "model.safetensors").is_file() and (out / "ssl" / "training_info.json").is_file()

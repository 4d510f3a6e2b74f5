"""`hf-ssl embed`: the exported encoder's features of a whole dataset, equal to what plain transformers computes from
the export, in Parquet (with ids, splits, labels) or .npy, and no file at all when it fails."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import run_cli, run_python, shape_images


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return shape_images(tmp_path_factory.mktemp("embed") / "shapes", {"train": 3, "test": 2})


def test_embed_writes_the_features_plain_transformers_computes(pretrained_out, shapes, tmp_path):
    out, _ = pretrained_out
    output = tmp_path / "features.parquet"
    result = run_cli("embed", "--model", str(out), "--dataset", f"imagefolder:{shapes}", "--output", str(output),
                     "--batch_size", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    table = pq.read_table(output).to_pydict()
    assert len(table["id"]) == 15 and set(table["split"]) == {"train", "test"}
    assert table["id"][0].startswith("train/") and table["id"][0].endswith(".png")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial file left
    rows = dict(zip(table["id"], table["embedding"]))
    # plain transformers, where hf_ssl cannot be imported: the processor, the ViT, the mean of the patch tokens (MAE's
    # pooling, recorded in OUT)
    expected = json.loads(run_python(f"""
        import json, pathlib, torch
        from PIL import Image
        from transformers import AutoImageProcessor, AutoModel
        processor, encoder = AutoImageProcessor.from_pretrained({str(out)!r}), AutoModel.from_pretrained({str(out)!r})
        root = pathlib.Path({str(shapes)!r})
        names = sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))
        images = [Image.open(root / name).convert("RGB") for name in names]
        with torch.no_grad():
            features = encoder(**processor(images, return_tensors="pt")).last_hidden_state[:, 1:].mean(1)
        print(json.dumps(dict(zip(names, features.tolist()))))
    """).stdout.strip().splitlines()[-1])
    assert set(expected) == set(rows)
    for name, vector in expected.items():
        np.testing.assert_allclose(rows[name], vector, rtol=1e-4, atol=1e-5)
    labels = dict(zip(table["id"], table["label"]))
    assert len({labels[name] for name in expected if name.startswith("train/circle/")}) == 1

    # .npy, one split: the same vectors, ids beside them
    array_file = tmp_path / "test.npy"
    result = run_cli("embed", "--model", str(out), "--dataset", f"imagefolder:{shapes}", "--split", "test",
                     "--output", str(array_file))
    assert result.returncode == 0, result.stderr[-3000:]
    ids = (tmp_path / "test.npy.ids.txt").read_text().splitlines()
    array = np.load(array_file)
    assert array.shape == (len(ids), len(rows["train/" + ids[0].split("/", 1)[1]])) and len(ids) == 6
    for name, vector in zip(ids, array):
        np.testing.assert_allclose(vector, rows[name], rtol=1e-6)


def test_embed_refuses_bad_outputs_in_one_line(pretrained_out, tmp_path):
    from hf_ssl.embeddings import check_output_path
    from hf_ssl.errors import HfSslError

    # checked first thing in the command (`hf-ssl: error: ...` is how the CLI shows every HfSslError)
    with pytest.raises(HfSslError, match=r"must end in \.parquet or \.npy"):
        check_output_path(tmp_path / "features.csv")
    with pytest.raises(HfSslError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "f.npy")
    out, _ = pretrained_out
    result = run_cli("embed", "--model", str(out), "--split", "validation", "--output", str(tmp_path / "f.npy"))
    assert result.returncode == 2 and result.stderr.startswith("hf-ssl: error:") and "Traceback" not in result.stderr
    assert "no split 'validation'" in result.stderr
    assert list(tmp_path.iterdir()) == []

"""TFRecord framing, tf.train.Example codec, and the CLEVR6 / Tetrominoes record readers."""
import gzip
import os

import numpy as np
import pytest
import torch

from data_fixtures import clevr_example, tetrominoes_example
from tusk.data import DataFileError, Tetrominoes, build_dataset
from tusk.data.crc32c import crc32c
from tusk.data.example_proto import decode_example, encode_example
from tusk.data.multi_object import Clevr6, TetrominoesRecords
from tusk.data.tfrecord import iter_examples, iter_records, write_examples, write_records


# ---------------------------------------------------------------- CRC-32C

@pytest.mark.parametrize("backend", ["auto", "numpy", "python"])
def test_crc32c_known_vectors(backend):
    assert crc32c(b"123456789", backend=backend) == 0xE3069283
    assert crc32c(bytes(32), backend=backend) == 0x8A9136AA  # RFC 3720 B.4
    assert crc32c(b"\xff" * 32, backend=backend) == 0x62A8AB43


def test_crc32c_numpy_matches_python_on_odd_lengths():
    rng = np.random.default_rng(0)
    for n in (256, 257, 1000, 4099, 65537):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert crc32c(data, backend="numpy") == crc32c(data, backend="python")


# ---------------------------------------------------------------- Example codec vs protobuf

def _protobuf_example_class():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FileDescriptorProto(name="tusk_test_example.proto", package="tusktest", syntax="proto3")
    T = descriptor_pb2.FieldDescriptorProto

    def msg(name, fields, nested=()):
        m = f.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            fd = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                fd.type_name = type_name
        for n in nested:
            m.nested_type.add().CopyFrom(n)
        return m

    rep, opt = T.LABEL_REPEATED, T.LABEL_OPTIONAL
    msg("BytesList", [("value", 1, T.TYPE_BYTES, rep, None)])
    msg("FloatList", [("value", 1, T.TYPE_FLOAT, rep, None)])
    msg("Int64List", [("value", 1, T.TYPE_INT64, rep, None)])
    feature = msg("Feature", [("bytes_list", 1, T.TYPE_MESSAGE, opt, ".tusktest.BytesList"),
                              ("float_list", 2, T.TYPE_MESSAGE, opt, ".tusktest.FloatList"),
                              ("int64_list", 3, T.TYPE_MESSAGE, opt, ".tusktest.Int64List")])
    feature.oneof_decl.add(name="kind")
    for fd in feature.field:
        fd.oneof_index = 0
    entry = descriptor_pb2.DescriptorProto(name="FeatureEntry")
    entry.field.add(name="key", number=1, type=T.TYPE_STRING, label=opt)
    entry.field.add(name="value", number=2, type=T.TYPE_MESSAGE, label=opt, type_name=".tusktest.Feature")
    entry.options.map_entry = True
    msg("Features", [("feature", 1, T.TYPE_MESSAGE, rep, ".tusktest.Features.FeatureEntry")], nested=[entry])
    msg("Example", [("features", 1, T.TYPE_MESSAGE, opt, ".tusktest.Features")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tusktest.Example"))


def test_example_codec_agrees_with_protobuf():
    Example = _protobuf_example_class()
    ours = encode_example({"name": [b"abc", b""], "pixels": np.array([0, 255, 7], np.uint8),
                           "x": np.array([1.5, -2.25], np.float32), "n": np.array([3, -1, 2 ** 40])})
    parsed = Example.FromString(ours)
    feat = parsed.features.feature
    assert list(feat["name"].bytes_list.value) == [b"abc", b""]
    assert list(feat["pixels"].bytes_list.value) == [b"\x00", b"\xff", b"\x07"]
    assert list(feat["x"].float_list.value) == [1.5, -2.25]
    assert list(feat["n"].int64_list.value) == [3, -1, 2 ** 40]
    # the other direction, including protobuf's own (packed) encoding of repeated scalars
    theirs = Example()
    theirs.features.feature["ints"].int64_list.value.extend([5, -7])
    theirs.features.feature["floats"].float_list.value.extend([0.5])
    theirs.features.feature["strings"].bytes_list.value.extend([b"hello", b"x"])
    theirs.features.feature["bytes1"].bytes_list.value.extend([b"\x01", b"\x02"])
    decoded = decode_example(theirs.SerializeToString())
    assert decoded["ints"].tolist() == [5, -7] and decoded["floats"].tolist() == [0.5]
    assert decoded["strings"] == [b"hello", b"x"]
    assert decoded["bytes1"].dtype == np.uint8 and decoded["bytes1"].tolist() == [1, 2]


def test_example_decode_rejects_garbage():
    with pytest.raises(ValueError):
        decode_example(b"\x0a\xff\xff\x01")  # a length far past the end


# ---------------------------------------------------------------- TFRecord framing

@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_tfrecord_roundtrip(tmp_path, compress):
    records = [b"", b"hello", os.urandom(3000)]
    path = write_records(tmp_path / "r.tfrecords", records, compress=compress)
    assert list(iter_records(path)) == records
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress


def test_tfrecord_truncated_and_corrupt_files_name_the_file(tmp_path):
    path = write_records(tmp_path / "data.tfrecords", [b"a" * 100, b"b" * 100])
    raw = path.read_bytes()
    cut = tmp_path / "cut.tfrecords"
    cut.write_bytes(raw[:-10])
    with pytest.raises(DataFileError, match=r"cut.tfrecords: record 1: truncated"):
        list(iter_records(cut))
    flipped = bytearray(raw)
    flipped[30] ^= 0x01  # inside record 0's data
    bad = tmp_path / "bad.tfrecords"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(DataFileError, match=r"bad.tfrecords: record 0: data checksum"):
        list(iter_records(bad))
    assert len(list(iter_records(bad, verify=False))) == 2  # opt-out of the data CRC
    badlen = bytearray(raw)
    badlen[0] ^= 0x40
    (tmp_path / "len.tfrecords").write_bytes(bytes(badlen))
    with pytest.raises(DataFileError, match="len.tfrecords: record 0: length checksum"):
        list(iter_records(tmp_path / "len.tfrecords"))
    gz = tmp_path / "cut.tfrecords.gz"
    gz.write_bytes(gzip.compress(raw)[:-12])
    with pytest.raises(DataFileError, match="cut.tfrecords.gz"):
        list(iter_records(gz))
    with pytest.raises(FileNotFoundError, match="missing.tfrecords"):
        list(iter_records(tmp_path / "missing.tfrecords"))
    garbage = write_records(tmp_path / "garbage.tfrecords", [b"\x0a\xff\xff\x01"])
    with pytest.raises(DataFileError, match="garbage.tfrecords: record 0: not a tf.train.Example"):
        list(iter_examples(garbage))


# ---------------------------------------------------------------- CLEVR6

# (y0, y1, x0, x1, shape, color, size, material), 1-based codes as DeepMind stores them
SCENES = [
    [(50, 90, 100, 140, 1, 3, 1, 2), (120, 160, 200, 230, 2, 8, 2, 1)],
    [(60, 100, 70, 110, 3, 1, 2, 2), (0, 20, 0, 40, 1, 1, 1, 1)],  # 2nd object outside the crop
    [(30 + 20 * i, 45 + 20 * i, 80, 95, 1, 1, 1, 1) for i in range(8)],  # 8 objects: filtered
    [(100, 140, 150, 190, 2, 5, 1, 1)],
    [(40, 60, 70, 90, 1, 2, 1, 1), (150, 200, 180, 250, 3, 4, 2, 2), (90, 110, 120, 140, 2, 6, 1, 2)],
    [(70, 120, 90, 200, 1, 7, 2, 1)],
]


@pytest.fixture
def clevr_dir(tmp_path):
    write_examples(tmp_path / "clevr_with_masks_train.tfrecords", [clevr_example(s) for s in SCENES],
                   compress=True)
    return tmp_path


PAPER_SPLIT = {"protocol": "paper", "train_scenes": 3, "test_scenes": 2}


def test_clevr6_filter_split_crop_and_masks(clevr_dir):
    # the paper protocol: the first 5 qualifying scenes, 3 train + 2 test, IODINE's crop
    train = Clevr6(clevr_dir, "train", **PAPER_SPLIT, image_size=96, progress=False)
    test = Clevr6(clevr_dir, "test", **PAPER_SPLIT, image_size=96, progress=False)
    assert len(train) == 3 and len(test) == 2
    assert [train[i]["index"] for i in range(3)] == [0, 1, 3]  # record 2 has 8 objects
    assert [test[i]["index"] for i in range(2)] == [4, 5]
    item = train[0]
    assert item["image"].shape == (3, 96, 96) and item["masks"].shape == (2, 96, 96)
    assert item["shape"].tolist() == [0, 1] and item["color"].tolist() == [2, 7]
    assert item["size"].tolist() == [0, 1] and item["material"].tolist() == [1, 0]
    # object 1: rows 50:90, cols 100:140 -> crop offset (29, 64) -> scale 96/192 = 0.5
    ys, xs = np.nonzero(item["masks"][0].numpy())
    # crop rows 21..60, cols 36..75; nearest-exact samples source pixel 2i+1 for output i
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (10, 29, 18, 37)
    cy, cx = (50 + 89) / 2 - 29, (100 + 139) / 2 - 64  # native centroid in the crop
    np.testing.assert_allclose(item["centers"][0], [(cx + 0.5) / 2 - 0.5, (cy + 0.5) / 2 - 0.5], atol=1e-4)
    # colour of the object pixels, resized by exact 2x2 averaging
    np.testing.assert_allclose(item["image"][:, 20, 27], np.array([20, 235, 7]) / 255, atol=1e-6)
    assert len(train[1]["shape"]) == 1  # the object outside the crop is dropped


def test_clevr6_cache_reuse_and_corruption(clevr_dir, tmp_path):
    ds = Clevr6(clevr_dir, "train", **PAPER_SPLIT, progress=False, cache_dir=tmp_path / "cache")
    assert ds[0]["image"].shape == (3, 128, 128)
    cache = ds.cache
    stamp = cache.stat().st_mtime_ns
    again = Clevr6(clevr_dir, "test", **PAPER_SPLIT, progress=False, cache_dir=tmp_path / "cache")
    assert cache.stat().st_mtime_ns == stamp and len(again) == 2
    ds.close()
    cache.write_bytes(cache.read_bytes()[:500])
    with pytest.raises(DataFileError, match=cache.name):
        Clevr6(clevr_dir, "train", **PAPER_SPLIT, progress=False, cache_dir=tmp_path / "cache")


def test_clevr6_damaged_or_short_source(tmp_path):
    path = write_examples(tmp_path / "clevr_with_masks_train.tfrecords", [clevr_example(s) for s in SCENES])
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(DataFileError, match="clevr_with_masks_train.tfrecords: record 5"):
        Clevr6(tmp_path, **PAPER_SPLIT, progress=False)
    assert not list(tmp_path.glob("*.h5*"))  # no cache left from a failed conversion
    write_examples(path, [clevr_example(s) for s in SCENES[:2]])
    with pytest.raises(DataFileError, match="holds only 2 scenes with at most 6 objects in its 2 records; "
                                            "the paper protocol needs 5"):
        Clevr6(tmp_path, **PAPER_SPLIT, progress=False)
    with pytest.raises(FileNotFoundError, match="clevr_with_masks_train.tfrecords"):
        Clevr6(tmp_path / "elsewhere")


def test_clevr6_via_build_dataset_and_loader(clevr_dir):
    ds = build_dataset("clevr6", "test", root=clevr_dir, image_size=64, protocol="paper", split_train=3, split_test=2, progress=False)
    from tusk.data import collate

    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate, num_workers=1)))
    assert batch["image"].shape == (2, 3, 64, 64) and len(batch["masks"]) == 2


# ---------------------------------------------------------------- Tetrominoes records

def test_tetrominoes_records_match_the_generator(tmp_path):
    gen = Tetrominoes(6, seed=11)
    write_examples(tmp_path / "tetrominoes_train.tfrecords", [tetrominoes_example(gen[i]) for i in range(6)],
                   compress=True)
    train = TetrominoesRecords(tmp_path, "train", records=6, test_scenes=2, progress=False)
    test = build_dataset("tetrominoes", "test", root=tmp_path, split_records=6, split_test=2, progress=False)
    assert len(train) == 4 and len(test) == 2
    for ds, offset in ((train, 0), (test, 4)):
        for i in range(len(ds)):
            got, want = ds[i], gen[i + offset]
            assert torch.equal(got["masks"], want["masks"])
            torch.testing.assert_close(got["image"], want["image"])
            assert torch.equal(got["shape"], want["shape"]) and torch.equal(got["color"], want["color"])
            torch.testing.assert_close(got["centers"], want["centers"])

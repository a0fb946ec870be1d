"""MNIST digit sources: IDX files (gzipped or not), npz, and the checksummed download."""
import contextlib
import functools
import gzip
import hashlib
import http.server
import threading

import numpy as np
import pytest

from data_fixtures import idx_bytes, synthetic_digits, write_mnist_dir
from tusk.data import ChecksumError, DataFileError, download_mnist, load_digits, read_idx
from tusk.data.mnist_digits import NPZ_TEST_EVERY, load_digits_npz, load_mnist_idx


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_idx_directory_roundtrip(tmp_path, gz):
    write_mnist_dir(tmp_path, gz=gz)
    images, labels = synthetic_digits()
    train = load_mnist_idx(tmp_path, "train")
    assert np.array_equal(train.images, images) and np.array_equal(train.labels, labels)
    test = load_digits(tmp_path, "test")
    assert np.array_equal(test.images, images[::-1]) and test.labels.dtype == np.int64


def test_read_idx_truncated_names_file(tmp_path):
    data = idx_bytes(np.zeros((4, 28, 28), np.uint8))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data)[:-30])  # gzip stream cut short
    with pytest.raises(DataFileError, match="train-images-idx3-ubyte.gz"):
        read_idx(path)
    raw = tmp_path / "short-idx3-ubyte"
    raw.write_bytes(data[:-5])
    with pytest.raises(DataFileError, match="short-idx3-ubyte.*truncated"):
        read_idx(raw)
    bad = tmp_path / "notidx"
    bad.write_bytes(b"hello world")
    with pytest.raises(DataFileError, match="notidx.*magic"):
        read_idx(bad)


def test_missing_idx_file_names_it(tmp_path):
    write_mnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist_idx(tmp_path, "test")


def test_label_count_mismatch(tmp_path):
    write_mnist_dir(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DataFileError, match="train-labels-idx1-ubyte"):
        load_mnist_idx(tmp_path, "train")


def test_npz_sources(tmp_path):
    images, labels = synthetic_digits()
    np.savez(tmp_path / "pool.npz", images=images, labels=labels)
    train = load_digits(tmp_path / "pool.npz", "train")
    test = load_digits(tmp_path / "pool.npz", "test")
    assert len(train) + len(test) == len(images)
    assert len(test) == len(images) // NPZ_TEST_EVERY
    assert len(load_digits_npz(tmp_path / "pool.npz", None)) == len(images)
    np.savez(tmp_path / "keras.npz", x_train=images, y_train=labels, x_test=images[:4], y_test=labels[:4])
    assert len(load_digits(tmp_path / "keras.npz", "test")) == 4
    np.savez(tmp_path / "other.npz", pixels=images)
    with pytest.raises(DataFileError, match="other.npz"):
        load_digits(tmp_path / "other.npz")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "pool.npz").read_bytes()[:200])
    with pytest.raises(DataFileError, match="cut.npz"):
        load_digits(tmp_path / "cut.npz")


@contextlib.contextmanager
def serve(directory):
    """A file server for ``directory`` on the loopback interface."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _md5s(directory):
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in directory.glob("*.gz")}


def test_download_verifies_and_installs(tmp_path):
    mirror = write_mnist_dir(tmp_path / "mirror")
    sums = _md5s(mirror)
    with serve(mirror) as url:
        out = download_mnist(tmp_path / "cache", mirrors=[url], checksums=sums)
    assert sorted(p.name for p in out.iterdir()) == sorted(sums)
    assert np.array_equal(load_digits(out, "train").images, synthetic_digits()[0])


def test_download_falls_back_to_next_mirror_and_rejects_bad_checksums(tmp_path):
    good = write_mnist_dir(tmp_path / "good")
    sums = _md5s(good)
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in sums:
        (bad / name).write_bytes(b"corrupted download")
    with serve(bad) as bad_url, serve(good) as good_url:
        out = download_mnist(tmp_path / "a", mirrors=[bad_url, good_url], checksums=sums)
        assert _md5s(out) == sums
        with pytest.raises(ChecksumError, match=r"idx\d-ubyte.gz: no mirror.*MD5"):
            download_mnist(tmp_path / "b", mirrors=[bad_url], checksums=sums)
    assert not any((tmp_path / "b").iterdir())  # nothing half-written left behind


def test_download_network_failure_and_fetch_hook(tmp_path):
    def offline(url, dest):
        raise OSError("network unreachable")

    with pytest.raises(OSError, match="could not download"):
        download_mnist(tmp_path / "x", mirrors=["http://mirror.invalid/"], checksums={"f.gz": "0" * 32},
                       fetch=offline)
    payload = b"payload"

    def local(url, dest):
        assert url == "http://mirror.invalid/f.gz"
        dest.write_bytes(payload)

    out = download_mnist(tmp_path / "y", mirrors=["http://mirror.invalid"],
                         checksums={"f.gz": hashlib.md5(payload).hexdigest()}, fetch=local)
    assert (out / "f.gz").read_bytes() == payload
    # present and valid: not fetched again
    download_mnist(out, mirrors=["http://mirror.invalid"],
                   checksums={"f.gz": hashlib.md5(payload).hexdigest()}, fetch=offline)


def test_load_digits_download_flag(tmp_path, monkeypatch):
    mirror = write_mnist_dir(tmp_path / "mirror")
    sums = _md5s(mirror)
    import tusk.data.mnist_digits as md

    monkeypatch.setattr(md, "MNIST_MD5", sums)
    with serve(mirror) as url:
        monkeypatch.setattr(md, "MNIST_MIRRORS", (url,))
        monkeypatch.setenv("TUSK_DATA", str(tmp_path / "home"))
        with pytest.raises(FileNotFoundError, match="download=True"):
            load_digits(None, "train")
        digits = load_digits(None, "train", download=True)
    assert len(digits) == 30 and (tmp_path / "home" / "mnist").is_dir()


def test_data_command_downloads_and_prepares(tmp_path, monkeypatch, capsys):
    from tusk.data.cli import main

    mirror = write_mnist_dir(tmp_path / "mirror")
    sums = _md5s(mirror)
    import tusk.data.mnist_digits as md

    monkeypatch.setattr(md, "MNIST_MD5", sums)
    with serve(mirror) as url:
        monkeypatch.setattr(md, "MNIST_MIRRORS", (url,))
        assert main(["mnist", "--dir", str(tmp_path / "out")]) == 0
    assert "30 train and 30 test digits" in capsys.readouterr().out
    # IDX files are the generator's digits, not the published MNIST-Hard images
    assert main(["prepare", "mnist_hard", "--root", str(tmp_path / "out")]) == 2
    assert "not a MIST mnist_hard directory" in capsys.readouterr().err

"""The shared MNIST snippet: IDX files, checksummed downloads, the cache and the stand-in fallback.

No test touches the network: mirrors are local folders reached through file:// URLs, and any other
URL fails the test.
"""
import functools
import struct
import urllib.request

import pytest
import torch

from coursepack.snippets import mnist


@pytest.fixture(autouse=True)
def local_only(monkeypatch):
    """Refuse non-file URLs and start every test outside quick and offline mode."""
    urlopen = urllib.request.urlopen

    def file_urls_only(url, *args, **kwargs):
        assert str(url).startswith("file:"), f"the test tried the network: {url}"
        return urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", file_urls_only)
    for name in ("NBGRADER_EXECUTION", "COURSEPACK_QUICK", "CI", "COURSEPACK_OFFLINE"):
        monkeypatch.delenv(name, raising=False)


def write_fake_mnist(folder, n_train=30, n_test=10):
    """The four MNIST files in the real format with random pixels; returns {file name: tensor}."""
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        tensors[f"{prefix}-images-idx3-ubyte.gz"] = torch.randint(0, 256, (n, 28, 28), generator=generator,
                                                                  dtype=torch.uint8)
        tensors[f"{prefix}-labels-idx1-ubyte.gz"] = torch.randint(0, 10, (n,), generator=generator,
                                                                  dtype=torch.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for name, tensor in tensors.items():
        mnist.write_idx(folder / name, tensor)
    return tensors


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local mirror of fake MNIST files whose MD5s the snippet is told to expect."""
    folder = tmp_path / "mirror"
    tensors = write_fake_mnist(folder)
    monkeypatch.setattr(mnist, "MD5", {name: mnist.md5sum(folder / name) for name in tensors})
    monkeypatch.setattr(mnist, "MIRRORS", (f"{(tmp_path / 'dead').as_uri()}/", f"{folder.as_uri()}/"))
    return folder


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("tensor", [
    torch.arange(2 * 28 * 28).remainder(256).to(torch.uint8).view(2, 28, 28),
    torch.tensor([7, 0, 9], dtype=torch.uint8),
    torch.tensor([[-5, 70000], [3, 4]], dtype=torch.int32),
    torch.tensor([1.5, -2.25], dtype=torch.float64),
], ids=["images", "labels", "int32", "float64"])
def test_idx_round_trip(tmp_path, tensor, suffix):
    path = tmp_path / f"data-idx{suffix}"
    mnist.write_idx(path, tensor)
    back = mnist.read_idx(path)
    assert back.dtype == tensor.dtype and torch.equal(back, tensor)
    raw = path.read_bytes()
    assert raw.startswith(b"\x1f\x8b") == (suffix == ".gz")


def test_idx_header_is_mnists(tmp_path):
    images, labels = torch.zeros(3, 28, 28, dtype=torch.uint8), torch.zeros(3, dtype=torch.uint8)
    mnist.write_idx(tmp_path / "images", images)
    mnist.write_idx(tmp_path / "labels", labels)
    assert (tmp_path / "images").read_bytes()[:16] == struct.pack(">I3I", 0x803, 3, 28, 28)
    assert (tmp_path / "labels").read_bytes()[:8] == struct.pack(">2I", 0x801, 3)


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n....", b"\x00\x00\x07\x01\x00\x00\x00\x01x", b"\x00"])
def test_read_idx_rejects_wrong_magic(tmp_path, content):
    (tmp_path / "bad").write_bytes(content)
    with pytest.raises(ValueError, match="not an IDX file.*0x00000803"):
        mnist.read_idx(tmp_path / "bad")


def test_read_idx_rejects_truncated_file(tmp_path):
    mnist.write_idx(tmp_path / "images", torch.zeros(4, 28, 28, dtype=torch.uint8))
    (tmp_path / "cut").write_bytes((tmp_path / "images").read_bytes()[:-10])
    with pytest.raises(ValueError, match="header says shape"):
        mnist.read_idx(tmp_path / "cut")


def test_write_idx_rejects_types_idx_cannot_store(tmp_path):
    with pytest.raises(TypeError, match="IDX cannot store torch.int64"):
        mnist.write_idx(tmp_path / "labels", torch.tensor([1, 2]))


def test_offline_download_raises_before_any_network(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEPACK_OFFLINE", "1")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("offline but opened a URL"))
    with pytest.raises(mnist.DownloadError, match="COURSEPACK_OFFLINE is set and 4 MNIST files"):
        mnist.download_mnist(tmp_path)


def test_download_verifies_then_caches(tmp_path, mirror, monkeypatch, capsys):
    folder = mnist.download_mnist(tmp_path / "root")
    assert folder == tmp_path / "root" / "MNIST"
    for name in mnist.MD5:
        assert (folder / name).read_bytes() == (mirror / name).read_bytes()
    assert not list(folder.glob("*.part"))
    assert "dead" in capsys.readouterr().out  # the dead mirror was tried first
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("cached but opened a URL"))
    assert mnist.download_mnist(tmp_path / "root") == folder


def test_download_rejects_a_corrupt_mirror_file(tmp_path, mirror):
    path = mirror / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    with pytest.raises(mnist.DownloadError, match="t10k-labels-idx1-ubyte.gz.*MD5 checksum mismatch"):
        mnist.download_mnist(tmp_path / "root")
    cached = tmp_path / "root" / "MNIST"
    assert not (cached / path.name).exists() and not list(cached.glob("*.part"))


def test_a_corrupt_cached_file_is_downloaded_again(tmp_path, mirror, monkeypatch):
    folder = mnist.download_mnist(tmp_path / "root")
    good = (folder / "train-labels-idx1-ubyte.gz").read_bytes()
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(good[::-1])
    monkeypatch.setenv("COURSEPACK_OFFLINE", "1")
    with pytest.raises(mnist.DownloadError, match="1 MNIST files are missing or corrupt"):
        mnist.download_mnist(tmp_path / "root")
    monkeypatch.delenv("COURSEPACK_OFFLINE")
    mnist.download_mnist(tmp_path / "root")
    assert (folder / "train-labels-idx1-ubyte.gz").read_bytes() == good


def test_load_digits_reads_mnist_files(tmp_path, monkeypatch, capsys):
    raw = write_fake_mnist(tmp_path / "MNIST")
    monkeypatch.setattr(mnist, "MD5", {name: mnist.md5sum(tmp_path / "MNIST" / name) for name in raw})
    monkeypatch.setenv("COURSEPACK_OFFLINE", "1")  # cached and intact: no download needed
    data = mnist.load_digits(tmp_path)
    assert data.is_mnist and data.name == "MNIST"
    assert "NOT MNIST" not in capsys.readouterr().out
    for images, labels, prefix in ((data.train_images, data.train_labels, "train"),
                                   (data.test_images, data.test_labels, "t10k")):
        pixels = raw[f"{prefix}-images-idx3-ubyte.gz"]
        assert images.shape == (len(pixels), 1, 28, 28) and images.dtype == torch.float32
        torch.testing.assert_close(images, ((pixels.float() / 255 - 0.1307) / 0.3081).unsqueeze(1))
        assert labels.dtype == torch.int64 and torch.equal(labels, raw[f"{prefix}-labels-idx1-ubyte.gz"].long())


def test_load_digits_downloads_when_nothing_is_cached(tmp_path, mirror):
    assert mnist.load_digits(tmp_path / "root").is_mnist


def test_load_digits_falls_back_to_a_loud_standin(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSEPACK_OFFLINE", "1")
    monkeypatch.setattr(mnist, "make_standin_digits",
                        functools.partial(mnist.make_standin_digits, n_train=100, n_test=40))
    data = mnist.load_digits(tmp_path)
    assert not data.is_mnist and data.name == "stand-in digits (NOT MNIST)"
    out = capsys.readouterr().out
    assert "STAND-IN DATA: THIS IS NOT MNIST" in out and "NOT on MNIST" in out
    assert data.train_images.shape == (100, 1, 28, 28) and data.test_images.shape == (40, 1, 28, 28)
    assert data.train_labels.dtype == torch.int64 and set(data.train_labels.tolist()) == set(range(10))
    assert sorted(p.name for p in (tmp_path / "standin-digits").iterdir()) == sorted(mnist.MD5)
    assert not (tmp_path / "MNIST").exists()


def test_load_digits_can_refuse_the_standin(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEPACK_OFFLINE", "1")
    with pytest.raises(mnist.DownloadError):
        mnist.load_digits(tmp_path, allow_standin=False)
    assert not (tmp_path / "standin-digits").exists()


@pytest.mark.parametrize(("variable", "value", "quick"), [
    ("NBGRADER_EXECUTION", "autograde", True), ("NBGRADER_EXECUTION", "validate", True),
    ("COURSEPACK_QUICK", "1", True), ("CI", "true", True), ("CI", "", False), (None, None, False),
])
def test_quick_mode(monkeypatch, variable, value, quick):
    if variable:
        monkeypatch.setenv(variable, value)
    assert mnist.quick_mode() is quick


def test_quick_mode_keeps_a_subset(tmp_path, monkeypatch):
    raw = write_fake_mnist(tmp_path / "MNIST")
    monkeypatch.setattr(mnist, "MD5", {name: mnist.md5sum(tmp_path / "MNIST" / name) for name in raw})
    monkeypatch.setattr(mnist, "QUICK_SIZES", (20, 5))
    monkeypatch.setenv("COURSEPACK_QUICK", "1")
    data = mnist.load_digits(tmp_path)
    assert (len(data.train_images), len(data.train_labels), len(data.test_images), len(data.test_labels)) \
        == (20, 20, 5, 5)


def test_standin_digits_are_valid_balanced_and_reproducible(tmp_path):
    folder = mnist.make_standin_digits(tmp_path / "a", n_train=200, n_test=50, seed=3)
    assert folder == tmp_path / "a" / "standin-digits"
    images = mnist.read_idx(folder / "train-images-idx3-ubyte.gz")
    labels = mnist.read_idx(folder / "train-labels-idx1-ubyte.gz")
    assert images.shape == (200, 28, 28) and images.dtype == torch.uint8 and labels.shape == (200,)
    assert torch.bincount(labels.long(), minlength=10).tolist() == [20] * 10
    ink = images.float().mean() / 255
    assert 0.05 < ink < 0.3, f"MNIST-like images are mostly black with bright strokes, mean {ink:.3f}"
    assert images[:, [0, -1]].max() < 64, "the digits must sit inside the frame, like MNIST's"
    means = torch.stack([images[labels == d].float().mean(0) for d in range(10)]).flatten(1)
    assert torch.cdist(means, means).add(torch.eye(10) * 1e9).min() > 100, "two digits look alike on average"
    again = mnist.make_standin_digits(tmp_path / "b", n_train=200, n_test=50, seed=3)
    other = mnist.make_standin_digits(tmp_path / "c", n_train=200, n_test=50, seed=4)
    assert torch.equal(mnist.read_idx(again / "train-images-idx3-ubyte.gz"), images)
    assert not torch.equal(mnist.read_idx(other / "train-images-idx3-ubyte.gz"), images)


def test_validation_split_is_a_fixed_disjoint_partition():
    images = torch.arange(200.0).reshape(200, 1, 1, 1).expand(200, 1, 28, 28)
    labels = torch.arange(200) % 10
    train_x, train_y, val_x, val_y = mnist.validation_split(images, labels, fraction=0.1, seed=0)
    assert (len(train_y), len(val_y)) == (180, 20)
    train_ids, val_ids = train_x[:, 0, 0, 0].long(), val_x[:, 0, 0, 0].long()
    assert torch.equal(torch.sort(torch.cat([train_ids, val_ids])).values, torch.arange(200)), "a partition"
    assert torch.equal(train_y, labels[train_ids]) and torch.equal(val_y, labels[val_ids]), "labels stay with images"
    assert not torch.equal(val_ids, torch.arange(20)), "a random sample, not the first images"
    again = mnist.validation_split(images, labels, fraction=0.1, seed=0)
    assert torch.equal(again[3], val_y) and torch.equal(again[2], val_x), "the same split on every run"
    other = mnist.validation_split(images, labels, fraction=0.1, seed=1)
    assert not torch.equal(other[2], val_x), "the seed chooses the split"

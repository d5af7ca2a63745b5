#@title The course's MNIST loader (shared with the demos; click to show the code)
"""MNIST for the course's notebooks: download with checksums, read IDX files, and a stand-in offline.

`load_digits()` returns MNIST when it is cached or can be downloaded. Without network (or with
COURSEPACK_OFFLINE set) it falls back to rendered stand-in digits and says so loudly: accuracies
measured on them are not MNIST accuracies.
"""
import gzip
import hashlib
import os
import shutil
import struct
import textwrap
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

DATA_DIR = Path(os.environ.get("COURSEPACK_DATA", "data"))
MIRRORS = (  # the mirrors torchvision uses; yann.lecun.com no longer serves the files
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
TIMEOUT_S = 10  # per connection attempt and per read: a dead mirror costs seconds, not minutes
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
STANDIN_NAME = "stand-in digits (NOT MNIST)"
QUICK_SIZES = (1500, 500)  # training and test images kept in quick mode


def quick_mode() -> bool:
    """True under nbgrader (autograde, validate), `make test` or CI: notebooks then use a small budget."""
    return any(os.environ.get(name) for name in ("NBGRADER_EXECUTION", "COURSEPACK_QUICK", "CI"))


# IDX: two zero bytes, a type code, the number of dimensions, big-endian uint32 sizes, then the data.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _open(path, mode):
    return gzip.open(path, mode, compresslevel=6) if str(path).endswith(".gz") else open(path, mode)


def read_idx(path) -> torch.Tensor:
    """Read an IDX file (gzip'd when its name ends in .gz) into a tensor of its dtype and shape."""
    with _open(path, "rb") as file:
        data = file.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file: magic number 0x{data[:4].hex()}, expected "
                         "0x00000803 (uint8 images) or 0x00000801 (uint8 labels)")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    dtype = np.dtype(IDX_TYPES[data[2]])
    body = data[4 + 4 * ndim:]
    if len(body) != dtype.itemsize * int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but the file holds {len(body)} bytes of data")
    array = np.frombuffer(body, dtype).astype(dtype.newbyteorder("="))  # a writable, native-endian copy
    return torch.from_numpy(array).reshape(shape)


def write_idx(path, tensor) -> None:
    """Write `tensor` (uint8, int8, int16, int32, float32 or float64) as an IDX file, gzip'd for .gz names."""
    array = tensor.detach().cpu().numpy()
    codes = {np.dtype(code_type).newbyteorder("="): code for code, code_type in IDX_TYPES.items()}
    if array.dtype not in codes:
        raise TypeError(f"IDX cannot store {tensor.dtype}; convert first, e.g. labels.to(torch.uint8)")
    header = struct.pack(f">2xBB{array.ndim}I", codes[array.dtype], array.ndim, *array.shape)
    # Write beside the target, then rename: a reader (another notebook running at the same time)
    # never sees half a file, and an interrupted write leaves no broken one behind.
    partial = Path(path).with_name(f".partial-{os.getpid()}-{Path(path).name}")
    with _open(partial, "wb") as file:
        file.write(header + array.astype(IDX_TYPES[codes[array.dtype]]).tobytes())
    os.replace(partial, path)


class DownloadError(RuntimeError):
    """MNIST is neither cached intact nor downloadable."""


def md5sum(path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(name, folder):
    """Download one file into `folder` from the first mirror that serves it intact."""
    folder.mkdir(parents=True, exist_ok=True)
    part, errors = folder / f"{name}.part", []
    for mirror in MIRRORS:
        print(f"Downloading {mirror}{name}")
        try:
            with urllib.request.urlopen(mirror + name, timeout=TIMEOUT_S) as response, open(part, "wb") as out:
                shutil.copyfileobj(response, out)
        except (OSError, ValueError) as error:  # URLError, HTTPError and timeouts are OSErrors
            errors.append(f"{mirror}{name}: {error}")
            continue
        if md5sum(part) == MD5[name]:
            part.replace(folder / name)
            return
        errors.append(f"{mirror}{name}: MD5 checksum mismatch (a corrupt or different file)")
    part.unlink(missing_ok=True)
    raise DownloadError(f"could not download {name} from any mirror; put the four MNIST files in {folder} "
                        "by hand or retry with network access:\n  " + "\n  ".join(errors))


def download_mnist(root=DATA_DIR) -> Path:
    """Return root/"MNIST" holding the four MNIST files, downloading those missing or corrupt."""
    folder = Path(root) / "MNIST"
    missing = [name for name, md5 in MD5.items() if not (folder / name).is_file() or md5sum(folder / name) != md5]
    if missing and os.environ.get("COURSEPACK_OFFLINE"):
        raise DownloadError(f"COURSEPACK_OFFLINE is set and {len(missing)} MNIST files are missing or "
                            f"corrupt in {folder}: no download tried")
    for name in missing:
        _fetch(name, folder)
    return folder


# Stand-in digits: each digit is a few pen strokes in the unit box (x right, y down), densely
# sampled, moved by a random affine map and a smooth wobble, splatted onto the 28 x 28 grid (20
# pixels high, like MNIST's digits) and inked with a Gaussian pen of random weight.
def _arc(cx, cy, rx, ry, start, stop, n=12):
    angles = torch.deg2rad(torch.linspace(start, stop, n))
    return torch.stack([cx + rx * angles.cos(), cy + ry * angles.sin()], 1)


def _line(*points):
    return torch.tensor(points)


def _pen_path(*strokes, step=.03):
    """The strokes' points, interpolated so that neighbours are at most `step` apart."""
    points = [torch.lerp(p, q, torch.linspace(0, 1, int(torch.dist(p, q) / step) + 2)[:-1, None])
              for stroke in strokes for p, q in zip(stroke[:-1], stroke[1:], strict=True)]
    return torch.cat(points + [stroke[-1:] for stroke in strokes])


def _pen_paths():
    """Each digit's ways of writing it, as pen paths in the unit box."""
    seven = _line((.2, .08), (.8, .08), (.42, .92))
    ring = _arc(.5, .3, .24, .22, 0, 360, 16)
    return {
        0: [_pen_path(_arc(.5, .5, .3, .42, 0, 360, 20)), _pen_path(_arc(.5, .5, .22, .42, -60, 300, 20))],
        1: [_pen_path(_line((.38, .22), (.55, .08), (.55, .92))), _pen_path(_line((.55, .08), (.47, .92))),
            _pen_path(_line((.38, .22), (.55, .08), (.55, .92)), _line((.36, .92), (.74, .92)))],
        2: [_pen_path(torch.cat([_arc(.5, .3, .27, .22, 180, 400), _line((.22, .92), (.8, .92))])),
            _pen_path(torch.cat([_arc(.5, .3, .27, .22, 180, 380), _line((.6, .62), (.2, .92), (.82, .9))]))],
        3: [_pen_path(torch.cat([_arc(.5, .29, .25, .21, 200, 450), _arc(.5, .71, .29, .21, 270, 520)])),
            _pen_path(torch.cat([_line((.25, .08), (.75, .08), (.45, .42)), _arc(.5, .68, .3, .24, 260, 520)]))],
        4: [_pen_path(_line((.68, .92), (.68, .08), (.18, .66), (.84, .66))),
            _pen_path(_line((.3, .08), (.22, .6), (.84, .6)), _line((.66, .3), (.66, .92)))],
        5: [_pen_path(torch.cat([_line((.76, .08), (.32, .08), (.3, .44)), _arc(.5, .66, .28, .26, 235, 500)])),
            _pen_path(torch.cat([_line((.3, .08), (.28, .44)), _arc(.5, .66, .28, .26, 235, 500)]),
                      _line((.3, .08), (.78, .1)))],
        6: [_pen_path(torch.cat([_line((.7, .08), (.45, .22), (.3, .45)), _arc(.5, .68, .24, .24, 180, 540, 16)])),
            _pen_path(torch.cat([_line((.62, .08), (.3, .6)), _arc(.48, .72, .2, .2, 210, 560, 16)]))],
        7: [_pen_path(seven), _pen_path(seven, _line((.38, .5), (.74, .5)))],
        8: [_pen_path(_arc(.5, .28, .2, .2, 0, 360, 16), _arc(.5, .7, .25, .22, 0, 360, 16)),
            _pen_path(_arc(.5, .3, .16, .22, 0, 360, 16), _arc(.5, .72, .28, .2, 0, 360, 16))],
        9: [_pen_path(torch.cat([ring, _line((.74, .3), (.62, .92))])),
            _pen_path(torch.cat([ring, _line((.74, .3), (.72, .6), (.6, .84), (.38, .92))]))],
    }


def _pen(sigma=.9):
    """A 7 x 7 Gaussian pen, scaled so that a line of one point per pixel inks 1 along its centre."""
    g = torch.exp(-torch.arange(-3., 4.).square() / (2 * sigma**2))
    return (torch.outer(g, g) / g.sum() ** 2 * (2 * torch.pi) ** .5 * sigma).view(1, 1, 7, 7)


def _render(path, n, generator):
    """`n` random renderings (n, 28, 28) uint8 of one digit's pen path."""
    def uniform(low, high, *shape):
        return low + (high - low) * torch.rand(n, *shape, generator=generator)

    angle, skew = uniform(-.3, .3), uniform(-.4, .4)
    rotate = torch.stack([angle.cos(), -angle.sin(), angle.sin(), angle.cos()], 1).view(n, 2, 2)
    shear = torch.stack([torch.ones(n), skew, torch.zeros(n), torch.ones(n)], 1).view(n, 2, 2)
    affine = rotate @ shear @ torch.diag_embed(torch.stack([uniform(.65, 1.), uniform(.8, 1.)], 1))
    amplitude, frequency, phase = uniform(0, .06, 1, 2), uniform(1.5, 4, 1, 2), uniform(0, 6.3, 1, 2)
    points = path - .5
    points = points + amplitude * torch.sin(frequency * points.flip(-1) + phase)  # a wobbly hand
    points = 14 + 20 * (torch.einsum("nij,nsj->nsi", affine, points) + uniform(-.05, .05, 1, 2)) - .5
    canvas = torch.zeros(n * 784)
    first = torch.arange(n)[:, None] * 784
    for corner in ((0, 0), (0, 1), (1, 0), (1, 1)):  # bilinear splatting, .6 pixels of line per point
        pixel = points.floor() + torch.tensor(corner)
        weight = (1 - (points - pixel).abs()).prod(-1) * .6 * ((pixel >= 0) & (pixel < 28)).all(-1)
        col, row = pixel.clamp(0, 27).long().unbind(-1)
        canvas.index_add_(0, (first + row * 28 + col).view(-1), weight.view(-1))
    inked = torch.nn.functional.conv2d(canvas.view(n, 1, 28, 28), _pen(), padding=3).squeeze(1)
    ink = (uniform(1.2, 3.5, 1, 1) * inked).clamp(0, 1)  # a random gain: thin to bold strokes
    ink = ink * uniform(.75, 1, 28, 28)  # uneven ink; the background stays black as in MNIST
    return (255 * ink).round().to(torch.uint8)


def make_standin_digits(root=DATA_DIR, n_train=10000, n_test=2000, seed=0) -> Path:
    """Write a small rendered-digit data set (NOT MNIST) as IDX files under root/"standin-digits"."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.randperm(n, generator=generator) % 10 for n in (n_train, n_test)])  # balanced
    images = torch.empty(len(labels), 28, 28, dtype=torch.uint8)
    for digit, paths in _pen_paths().items():
        index = (labels == digit).nonzero().squeeze(1)
        variant = torch.randint(len(paths), (len(index),), generator=generator)
        for chosen, path in enumerate(paths):
            images[index[variant == chosen]] = _render(path, int((variant == chosen).sum()), generator)
    folder = Path(root) / "standin-digits"
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, part in (("train", slice(0, n_train)), ("t10k", slice(n_train, None))):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images[part])
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels[part].to(torch.uint8))
    return folder


def validation_split(images, labels, fraction=0.1, seed=0):
    """Split a random `fraction` of (images, labels) off as a validation set, the same one on every run.

    Returns (train_images, train_labels, val_images, val_labels). Choose between models and epochs on
    the validation set; the test set is measured once, at the end, so that its accuracy stays honest.
    """
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_val = round(fraction * len(labels))
    val, train = order[:n_val], order[n_val:]
    return images[train], labels[train], images[val], labels[val]


class DigitData(NamedTuple):
    train_images: torch.Tensor  # (N, 1, 28, 28) float, normalised with MNIST's mean and std
    train_labels: torch.Tensor  # (N,) int64
    test_images: torch.Tensor
    test_labels: torch.Tensor
    name: str  # "MNIST" or STANDIN_NAME
    is_mnist: bool


def _banner(reason, folder):
    lines = ["STAND-IN DATA: THIS IS NOT MNIST", *textwrap.wrap(f"MNIST could not be loaded: {reason}", 80),
             *textwrap.wrap(f"Using rendered digits from {folder} instead.", 80),
             "Every accuracy below is measured on these digits, NOT on MNIST."]
    width = max(map(len, lines))
    print("\n".join(["#" * (width + 4), *(f"# {line:<{width}} #" for line in lines), "#" * (width + 4)]))


def load_digits(root=DATA_DIR, allow_standin=True) -> DigitData:
    """MNIST (cached or downloaded), else loudly a stand-in; in quick mode only the first QUICK_SIZES images."""
    try:
        folder, name = download_mnist(root), "MNIST"
    except DownloadError as error:
        if not allow_standin:
            raise
        folder, name = Path(root) / "standin-digits", STANDIN_NAME
        if not all((folder / file).is_file() for file in MD5):
            make_standin_digits(root)
        _banner(str(error).splitlines()[0], folder)
    n_train, n_test = QUICK_SIZES if quick_mode() else (None, None)

    def split(prefix, n):
        images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")[:n]
        labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")[:n]
        return ((images.float() / 255 - MNIST_MEAN) / MNIST_STD).unsqueeze(1), labels.long()

    data = DigitData(*split("train", n_train), *split("t10k", n_test), name, name == "MNIST")
    print(f"Data: {name} from {folder}: {len(data.train_labels)} training and {len(data.test_labels)} test "
          f"images{' (quick mode: a subset)' if quick_mode() else ''}.")
    return data

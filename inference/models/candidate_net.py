"""The nodule classifier: a MONAI ResNet on candidate patches plus shape features.

Why this network: the decision "nodule or look-alike" needs the 3-D texture
around the candidate (a vessel continues out of the patch, a nodule does
not) -- a small residual CNN learns that -- and the candidate stage already
measured shape (sphericity, contrast, how much was cut off as vessel); those
numbers enter through a small MLP and are fused before the last layer.
MONAI's ``ResNet`` (MedicalNet-style) is the backbone rather than a
hand-written one; widths are small so it trains and runs on two CPU cores.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["CandidateNet", "CandidateEnsemble", "DEFAULT_MEMBERS"]

#: members of a CandidateEnsemble whose architecture does not say (the one default, read by fpr_train too)
DEFAULT_MEMBERS = 3


class CandidateNet(nn.Module):
    """``forward(patches (B, C, D, H, W), features (B, F)) -> logits (B, 1)``."""

    def __init__(self, in_channels: int = 3, n_features: int = 14, widths: Sequence[int] = (16, 32, 64, 128),
                 layers: Sequence[int] = (1, 1, 1, 1), stem_stride: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        from monai.networks.nets import ResNet

        self.backbone = ResNet(block="basic", layers=list(layers), block_inplanes=list(widths), spatial_dims=3,
                               n_input_channels=in_channels, conv1_t_size=3, conv1_t_stride=stem_stride,
                               no_max_pool=True, feed_forward=False)
        self.features = nn.Sequential(nn.Linear(n_features, 32), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Linear(int(widths[-1]) + 32, 64), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(64, 1))

    def forward(self, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.backbone(x), self.features(f)], dim=1))


class CandidateEnsemble(nn.Module):
    """``members`` :class:`CandidateNet` s of one architecture; the logit is their mean.

    Why an ensemble: with ~700 nodule candidates per training run, which
    nodules a single network scores above the operating point changes with
    the training seed (two seeds: 0.846 and 0.862 held-out sensitivity);
    averaging the logits of networks trained from different seeds is the
    standard way to reduce that variance, at ``members``× the network's cost.
    (A 2-member ensemble gave 0.870 there and was not shipped:
    benchmarks/RESULTS.md.) One ``state_dict`` (keys ``members.<k>.…``),
    so the ensemble is one safetensors file with one sha256.
    """

    def __init__(self, members: int = DEFAULT_MEMBERS, **kwargs: object) -> None:
        super().__init__()
        self.members = nn.ModuleList(CandidateNet(**kwargs) for _ in range(int(members)))  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x, f) for m in self.members], dim=0).mean(dim=0)

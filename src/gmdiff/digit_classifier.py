"""A small CNN digit classifier trained by the library, used as the feature extractor of
the "FD-digits" distance and the "IS-digits" score (see :mod:`gmdiff.metrics`).

It stands in for Inception-v3 on the shipped 8x8 and 28x28 digits, where Inception
features are neither available offline nor meaningful; numbers computed with it are
never comparable with a paper's FID / IS.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from tqdm import tqdm  # plain bars: tqdm.auto warns in kernels without ipywidgets


class DigitClassifier(nn.Module):
    """conv(16) -> conv(32, stride 2) -> 4x4 adaptive average pool -> linear(``width``)
    -> ReLU (the features) -> linear(n_classes). Works at any input size >= 4x4."""

    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(32 * 16, width),
            nn.ReLU(),
        )
        self.head = nn.Linear(width, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate-layer activations, shape (N, width)."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits, shape (N, n_classes)."""
        return self.head(self.body(x))


def train_digit_classifier(
    images: Tensor,
    labels: Tensor,
    steps: int,
    generator: torch.Generator,
    batch_size: int = 128,
    lr: float = 3e-3,
) -> DigitClassifier:
    """Train a :class:`DigitClassifier` with Adam on (N, C, H, W) images in [-1, 1].

    Deterministic on CPU for a given ``generator`` state: the initial weights and every
    minibatch are drawn from it (the global RNG is left untouched). The loop runs on one
    intra-op thread (restored afterwards): for a net this small, more threads only add
    synchronisation cost (measured 20x slower with 2 threads on a loaded 2-core machine).
    Returns the model in eval mode.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitClassifier(images.shape[1], int(labels.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x, y = images.float(), labels.long()
    model.train()
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in tqdm(range(steps), desc="digit classifier", disable=None):
            idx = torch.randint(0, x.shape[0], (batch_size,), generator=generator)
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(n_threads)
    return model.eval()


@torch.no_grad()
def classifier_accuracy(model: DigitClassifier, images: Tensor, labels: Tensor) -> float:
    """Fraction of ``images`` whose arg-max class equals ``labels``."""
    return (model(images.float()).argmax(1) == labels).float().mean().item()

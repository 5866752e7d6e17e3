"""The network inside the wrappers the trainer puts around it (DDP, torch.compile)."""

from __future__ import annotations

from torch import nn


def unwrap(model: object) -> object:
    """The network inside ``model``'s DistributedDataParallel (``.module``) and
    torch.compile (``._orig_mod``) wrappers, any number of them; ``model`` itself when it
    is not wrapped. The trainer calls a loss with the wrapped network, whose call runs the
    wrapped forward but whose attributes (a GM-DDPM network's ``noise`` and ``logits``)
    DDP hides: a loss reads them from ``unwrap(model)``. Its parameters are the wrapper's,
    so DDP still averages their gradients (its hooks sit on the parameters) when such a
    method runs outside the wrapper's forward."""
    while isinstance(model, nn.Module):
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # OptimizedModule
            model = model._orig_mod
        else:
            break
    return model

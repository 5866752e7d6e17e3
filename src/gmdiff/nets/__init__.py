"""Networks: raw ``F(x, c_noise)`` modules and preconditioning wrappers that turn them
into denoisers ``D(x, sigma)`` (see :mod:`gmdiff.nets.precond`)."""

from gmdiff.nets.configs import (
    CONFIGS,
    PUBLISHED_PARAMS,
    ParamRow,
    build_net,
    count_params,
    get_config,
    param_count_table,
)
from gmdiff.nets.edm_song import SongUNet, SongUNetConfig
from gmdiff.nets.embeddings import GaussianFourierEmbedding, sinusoidal_embedding
from gmdiff.nets.fir import FIRDownsampleConv, FIRResample, fir_kernel_2d
from gmdiff.nets.gm_ddpm import GMDDPMConfig, GMDDPMNet
from gmdiff.nets.layers import AttentionBlock, num_groups
from gmdiff.nets.mlp import MLP, MLPConfig
from gmdiff.nets.ncsnpp import NCSNpp, NCSNppConfig
from gmdiff.nets.precond import (
    Coefficients,
    EDMPrecond,
    Precond,
    ScorePrecond,
    VEPrecond,
    VPPrecond,
)
from gmdiff.nets.smd import HyperLayer, SMDConfig, SMDNet, smd_param_counts
from gmdiff.nets.unet import UNet, UNetConfig
from gmdiff.nets.wrappers import unwrap

__all__ = [
    "CONFIGS",
    "MLP",
    "PUBLISHED_PARAMS",
    "AttentionBlock",
    "Coefficients",
    "EDMPrecond",
    "FIRDownsampleConv",
    "FIRResample",
    "GMDDPMConfig",
    "GMDDPMNet",
    "GaussianFourierEmbedding",
    "HyperLayer",
    "MLPConfig",
    "NCSNpp",
    "NCSNppConfig",
    "ParamRow",
    "Precond",
    "SMDConfig",
    "SMDNet",
    "ScorePrecond",
    "SongUNet",
    "SongUNetConfig",
    "UNet",
    "UNetConfig",
    "VEPrecond",
    "VPPrecond",
    "build_net",
    "count_params",
    "fir_kernel_2d",
    "get_config",
    "num_groups",
    "param_count_table",
    "sinusoidal_embedding",
    "smd_param_counts",
    "unwrap",
]

"""Experiment sizes of every chapter, in one place: ``ci`` runs on 2 CPU cores with the
data that packages ship; ``full`` is the paper-scale setting for GPUs and user data."""

from __future__ import annotations

from typing import Any

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "gs_closed_forms": {
        # Exact computations: the two profiles differ only in how many points are checked.
        "ci": {
            "rank": 8,
            "sigmas": [0.01, 0.1, 1.0, 10.0, 80.0],
            "n_queries": 256,
            "n_trajectories": 4,
            "pcs_shown": [0, 7, 20, 40],
        },
        "full": {
            "rank": 8,
            "sigmas": [0.002, 0.01, 0.1, 1.0, 10.0, 80.0],
            "n_queries": 2048,
            "n_trajectories": 16,
            "pcs_shown": [0, 7, 20, 40],
        },
    },
    "gs_gaussian_dynamics": {
        # Exact computations on DDPM's CIFAR-10 schedule (linear betas, T = 1000).
        "ci": {
            "lams": [0.01, 0.1, 1.0, 10.0, 100.0],
            "t_prime": 0.5,
            "t_end": 1e-5,
            "ranks": [10, 50],
            "n_starts": 32,
        },
        "full": {
            "lams": [0.01, 0.1, 1.0, 10.0, 100.0],
            "t_prime": 0.5,
            "t_end": 1e-5,
            "ranks": [10, 50, 200],
            "n_starts": 256,
        },
    },
    "gs_far_field": {
        "ci": {
            "sigma_min": 0.1,
            "sigma_max": 1000.0,
            "n_sigmas": 13,
            "n_queries": 256,
            "fit_from_sigma": 40.0,
        },
        "full": {
            "sigma_min": 0.1,
            "sigma_max": 1000.0,
            "n_sigmas": 25,
            "n_queries": 2048,
            "fit_from_sigma": 40.0,
        },
    },
}


def get_profile(chapter: str, profile: str) -> dict[str, Any]:
    """The settings of ``chapter`` under ``profile`` ("ci" or "full"); a clear error otherwise."""
    if chapter not in PROFILES:
        raise KeyError(f"no profiles for chapter {chapter!r}; known: {sorted(PROFILES)}")
    table = PROFILES[chapter]
    if profile not in table:
        raise ValueError(f"profile must be one of {sorted(table)}, got {profile!r}")
    return dict(table[profile])

"""Experiment sizes of every chapter, in one place: ``ci`` runs on 2 CPU cores with the
data that packages ship; ``full`` is the paper-scale setting for GPUs and user data."""

from __future__ import annotations

from typing import Any

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "x_likelihood": {
        # Exact computations on the 2-D ring: the profiles differ in the number of points.
        "ci": {"n": 200, "sigma_maxes": [5.0, 20.0, 80.0], "rtol": 1e-5},
        "full": {"n": 2000, "sigma_maxes": [5.0, 20.0, 80.0, 400.0], "rtol": 1e-5},
    },
    "x_benchmark": {
        # Five methods x data with exact answers x seeds, one MLP size and training budget
        # (gmdiff.benchmark.Budget); full: longer training, larger nets, more D and samples.
        "ci": {
            "data": {
                "ring": {"name": "ring", "k": 8, "radius": 2.0, "std": 0.1},
                "wide ring": {"name": "ring", "k": 8, "radius": 2.0, "std": 0.5},
                "GMM D=16": {"name": "low_rank_gmm", "d": 16, "k": 8, "rank": 2},
            },
            "budget": {"steps": 1000, "batch": 256},
            "seeds": [0, 1, 2],
            "nfes": [10, 20, 50],
            "n": 2000,
            "error_steps": [1, 3, 5, 10, 20, 30],
            "n_error": 2000,
            "kernel": {"steps": [2, 3, 5, 10], "n_x": 128, "n_y": 128, "n_eta": 64},
            "cost_steps": 100,
            "cost_repeats": 3,
            "teleport_scale": 1.0,
            # 8x8 digits: the digits U-Net (24 base channels) for every method, the
            # gmd_tables recipe (400 steps of batch 16), FD-digits of n samples (as
            # gmd_tables); two NFE budgets, as sampling the U-Nets dominates the time.
            "images": {
                "data": {"8x8 digits": {"name": "digits8x8"}},
                "budget": {"steps": 400, "batch": 16, "warmup": 50, "ema_decay": 0.99,
                           "channels": 24},
                "nfes": [10, 50],
                "n": 200,
                "cost_steps": 20,
                "cost_repeats": 3,
            },
        },
        "full": {
            "data": {
                "ring": {"name": "ring", "k": 8, "radius": 2.0, "std": 0.1},
                "wide ring": {"name": "ring", "k": 8, "radius": 2.0, "std": 0.5},
                "GMM D=16": {"name": "low_rank_gmm", "d": 16, "k": 8, "rank": 2},
                "GMM D=64": {"name": "low_rank_gmm", "d": 64, "k": 8, "rank": 4},
                "GMM D=256": {"name": "low_rank_gmm", "d": 256, "k": 16, "rank": 8},
            },
            "budget": {"steps": 20000, "batch": 512, "width": 256, "T": 200,
                       "beta_1": 1e-4, "beta_T": 0.1},
            "seeds": [0, 1, 2, 3, 4],
            "nfes": [10, 20, 50, 100, 200],
            "n": 10000,
            "error_steps": [1, 5, 10, 20, 50, 100],
            "n_error": 10000,
            "kernel": {"steps": [2, 5, 10, 20, 50, 100], "n_x": 1024, "n_y": 512, "n_eta": 256},
            "cost_steps": 200,
            "cost_repeats": 5,
            "teleport_scale": 1.0,
            "images": {
                "data": {"8x8 digits": {"name": "digits8x8"}},
                "budget": {"steps": 20000, "batch": 128, "warmup": 500, "ema_decay": 0.999,
                           "channels": 32, "T": 200, "beta_1": 1e-4, "beta_T": 0.1},
                "nfes": [10, 20, 50, 100, 200],
                "n": 1797,
                "cost_steps": 100,
                "cost_repeats": 5,
            },
        },
    },
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
    "gs_score_structure": {
        # Trained networks from gmdiff.zoo (digits U-Net, toy GMM MLP) against exact scores.
        "ci": {
            "sigma_min": 0.02,
            "sigma_max": 80.0,
            "n_sigmas": 13,
            "fine_sigmas": [1.0, 3.2, 9],  # GS-6: the threshold between two grid points
            "n_queries": 256,
            "kmeans_ks": [10],
            "heun_steps": 18,
            "n_trajectories": 128,
            "plane_digit": 2,
            "plane_sigmas": [2.0, 0.3, 0.1],
            "plane_grid": 17,
            "toy_n_points": 2000,
        },
        "full": {
            "sigma_min": 0.002,
            "sigma_max": 80.0,
            "n_sigmas": 25,
            "fine_sigmas": [1.0, 3.2, 17],
            "n_queries": 2048,
            "kmeans_ks": [10, 100],
            "heun_steps": 18,
            "n_trajectories": 1024,
            "plane_digit": 2,
            "plane_sigmas": [2.0, 0.3, 0.1],
            "plane_grid": 25,
            "toy_n_points": 20000,
        },
    },
    "gs_learning_dynamics": {
        # GMM mode x rank sweep (GS-9) and training snapshots from gmdiff.zoo (GS-11).
        "ci": {
            "sweep_ks": [1, 2, 5, 10, 20, 50, 100, 200, 500],
            "sweep_ranks": [1, 2, 4, 8, 16, 32, 64],
            "sweep_sigmas": [0.05, 0.2, 1.0, 5.0],
            "n_queries": 256,
            "kmeans_ks": [10],
            "curve_sigmas": [0.1, 0.5, 1.5, 10.0],
            "snapshot_steps": [0, 25, 50, 100, 200, 300, 500, 750, 1000],
            "toy_snapshot_steps": [0, 50, 100, 250, 500, 1000, 1500, 2500],
        },
        "full": {
            "sweep_ks": [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
            "sweep_ranks": [1, 4, 16, 64, 256, 1024],
            "sweep_sigmas": [0.05, 0.1, 0.5, 1.0, 5.0, 10.0],
            "n_queries": 1024,
            "kmeans_ks": [10, 100],
            "curve_sigmas": [0.1, 0.5, 1.5, 10.0],
            "snapshot_steps": [0, 250, 500, 1000, 2500, 5000, 10000, 15000, 25000],
            "toy_snapshot_steps": [0, 500, 1000, 2500, 5000, 10000, 25000, 50000],
        },
    },
    "gms_anomalous_diffusion": {
        # Exact densities and CPU simulation; sizes only change the KS sample and path length.
        "ci": {
            "alphas": [1.0, 1.5, 1.8],
            "beta": 2.0,
            "alpha_path": 1.8,
            "n_steps": 1000,
            "n_ks": 2000,
        },
        "full": {
            "alphas": [0.5, 1.0, 1.5, 1.8],
            "beta": 2.0,
            "alpha_path": 1.8,
            "n_steps": 5000,
            "n_ks": 20000,
        },
    },
    "gms_noise_studies": {
        # 2-D ring (exact metric, exact optimal denoisers) + a 64-D GMM fitted to the 8x8
        # digits (exact denoisers only); trained nets are 3x128 MLPs on the ring, CPU.
        "ci": {
            "steps": 5000,  # at 1,500 the MLPs left the modes ~3x too wide (measured)
            "batch": 256,
            "lr": 2e-3,
            "sigma_max": 4.0,
            "n": 2000,
            "n_xi": 512,
            "xi_steps": 200,
            "fail_iterations": [100, 500],
            "increment_iterations": 333,
            "distance_sigmas": [0.05, 0.2, 0.5, 1.0, 2.0],
        },
        "full": {
            "steps": 20000,
            "batch": 512,
            "lr": 1e-3,
            "sigma_max": 4.0,
            "n": 20000,
            "n_xi": 2048,
            "xi_steps": 1000,
            "fail_iterations": [200, 1000, 2000],
            "increment_iterations": 333,
            "distance_sigmas": [0.05, 0.2, 0.5, 1.0, 2.0],
        },
    },
    "gms_theorems": {
        # Monte-Carlo sample sizes of the Thm. 1 and Eq. 13 checks (float64, CPU).
        "ci": {
            "sigmas_bridge": [0.5, 1.0, 2.0],
            "n_bridge": 200000,
            "sigma_denoise": 1.0,
            "n_denoise": 200000,
        },
        "full": {
            "sigmas_bridge": [0.5, 1.0, 2.0],
            "n_bridge": 2000000,
            "sigma_denoise": 1.0,
            "n_denoise": 2000000,
        },
    },
    "gs_teleportation": {
        # Heun-18 with 0..skip steps teleported; zoo models (ci: CPU-trained, see gmdiff.zoo).
        "ci": {
            "steps": 18,
            "n_gmm": 4000,
            "n_ode_ref": 500,
            "n_projections": 512,
            "n_floor": 5,
            "gmm_skips": list(range(12)),
            "n_digits": 1000,
            "digit_skips": [0, 4, 5, 6, 7, 8, 10],
            "n_boot": 100,
        },
        "full": {
            "steps": 18,
            "n_gmm": 20000,
            "n_ode_ref": 2000,
            "n_projections": 2048,
            "n_floor": 20,
            "gmm_skips": list(range(18)),
            "n_digits": 5000,
            "digit_skips": list(range(13)),
            "n_boot": 200,
        },
    },
    "smd_theory": {
        # Exact float64 computations (SMD paper, Sec. 3); Monte-Carlo sizes only differ.
        "ci": {
            "Ts": [2, 5, 10],
            "n_points": 64,
            "n_sim": 200000,
            "separations": [0.5, 2.0, 8.0, 32.0, 128.0, 512.0, 4096.0],
            "n_mc": 10000,
            "n_quad": 100000,
            "n_global": 20000,
        },
        "full": {
            "Ts": [2, 5, 10, 100],
            "n_points": 256,
            "n_sim": 2000000,
            "separations": [0.5, 2.0, 8.0, 32.0, 128.0, 512.0, 4096.0],
            "n_mc": 100000,
            "n_quad": 1000000,
            "n_global": 200000,
        },
    },
    "smd_method": {
        # 2-D ring of 8 Gaussians (configs/smd_toy.yaml), MLP 3 x 128 eps networks on the CPU.
        "ci": {
            "Ts": [5, 10],
            "steps": 1500,
            "control_steps": 1500,  # SMD-4's continuation control: min of 4 eta, then Eq. 15
            "batch": 256,
            "n_x": 128,
            "n_y": 128,
            "n_eta_eval": 256,
            "n_samples": 2000,
            "n_etas_train": [1, 4],
            "n_etas_time": [1, 2, 4, 8],
            "time_steps": 20,
            "time_repeats": 3,
        },
        "full": {
            "Ts": [2, 5, 10, 20],
            "steps": 20000,
            "control_steps": 20000,
            "batch": 512,
            "n_x": 1024,
            "n_y": 512,
            "n_eta_eval": 1024,
            "n_samples": 20000,
            "n_etas_train": [1, 2, 4, 8],
            "n_etas_time": [1, 2, 4, 8, 16],
            "time_steps": 50,
            "time_repeats": 5,
        },
    },
    "smd_tables": {
        # ci: sklearn 8x8 digits, DDPM vs DDPM w/ SMD (configs/smd_digits.yaml), FD-digits.
        # full: CIFAR-10 at paper scale (configs/ddpm_cifar10.yaml, configs/smd_cifar10.yaml),
        # FID on 10,000 samples (SMD paper, Sec. 5.1); GPU and the CIFAR-10 batches needed.
        "ci": {
            "base": "configs/smd_digits.yaml",
            "grid": [["ddpm", 10], ["ddpm", 25], ["ddpm", 50],
                     ["ddim", 10], ["ddim", 25], ["ddim", 50]],  # fmt: skip
            "n": 200,  # sampling the U-Nets costs ~0.1 ms per image and step on one thread
        },
        "full": {
            "base": "configs/smd_cifar10.yaml",
            "grid": [["ddpm", 100], ["ddpm", 200], ["ddpm", 500], ["ddpm", 1000],
                     ["ddim", 100], ["ddim", 200], ["ddim", 500]],  # fmt: skip
            "n": 10000,
        },
    },
    "gmd_forward": {
        # GM-DDPM forward process: float64 simulations (D = 2) against Eqs. 4, 29-30; PSNR
        # and digit-classifier accuracy of x_t on the 1,797 sklearn 8x8 digits (T = 1000).
        "ci": {
            "n_check": 4000,
            "check_steps": [1, 10, 100, 500, 1000],
            "lams": [0.0, 0.1, 0.2, 1.0],
            "curve_steps": list(range(0, 1001, 50))[1:],
            "classifier_steps": 1000,
        },
        "full": {
            "n_check": 40000,
            "check_steps": [1, 2, 10, 100, 500, 999, 1000],
            "lams": [0.0, 0.1, 0.2, 1.0],
            "curve_steps": list(range(0, 1001, 25))[1:],
            "classifier_steps": 3000,
        },
    },
    "gmd_samplers": {
        # The exact GM-DDPM model (float64) on the 2-D ring, T = 20 cosine steps.
        "ci": {"T": 20, "n": 2000, "seeds": [0, 1, 2], "lams": [0.0, 0.1, 0.2, 1.0], "n_id": 4000},
        "full": {
            "T": 20,
            "n": 10000,
            "seeds": [0, 1, 2, 3, 4],
            "lams": [0.0, 0.1, 0.2, 1.0],
            "n_id": 20000,
        },
    },
    "gmd_training": {
        # configs/gm_ddpm_toy.yaml (ring, MLP 3 x 128 + classifier 2 x 64, T = 20), one
        # model per lambda, trained by gmdiff.cli.train (the library's Trainer).
        "ci": {"steps": 1500, "lams": [0.0, 0.2, 1.0], "n": 2000, "n_id": 4000},
        "full": {"steps": 10000, "lams": [0.0, 0.1, 0.2, 1.0], "n": 10000, "n_id": 20000},
    },
    "gms_dimension": {
        # ci: exact-score recursion up to CIFAR's D, and small MLPs on a low-rank GMM at two D
        # (CPU, one thread); full: more D, seeds and steps, the same code.
        "ci": {
            "exact_dims": [2, 16, 64, 256, 784, 3072],
            "exact_iterations": [20, 50, 100, 200, 1000],
            "gmm": {"k": 4, "rank": 4},
            "exact_mc_dims": [16, 64, 256],
            "dims": [16, 64],
            "seeds": [0, 1],
            # EMA 0.99: at 0.999 the average of a 1,000-step run still holds the initial weights
            "net": {
                "width": 256,
                "depth": 3,
                "steps": 1000,
                "batch": 128,
                "lr": 2e-3,
                "ema_decay": 0.99,
            },
            "iterations": [20, 50, 100, 200],
            "ratio_iterations": 50,
            "n": 400,
        },
        "full": {
            "exact_dims": [2, 16, 64, 256, 784, 3072, 12288],
            "exact_iterations": [20, 50, 100, 200, 500, 1000],
            "gmm": {"k": 10, "rank": 16},
            "exact_mc_dims": [64, 256, 784, 3072],
            "dims": [64, 256, 784, 3072],
            "seeds": [0, 1, 2],
            "net": {
                "width": 1024,
                "depth": 4,
                "steps": 20000,
                "batch": 256,
                "lr": 1e-3,
                "ema_decay": 0.999,
            },
            "iterations": [20, 50, 100, 200, 1000],
            "ratio_iterations": 50,
            "n": 4000,
        },
    },
    "gmd_tables": {
        # GM-DDPM Tables 1-3. ci: configs/gm_ddpm_digits.yaml (8x8 digits, T = 50, CPU),
        # FD-digits / IS-digits / precision-recall in the digit classifier's features.
        # full: configs/gm_ddpm_cifar10.yaml (T = 1000, GPU, the CIFAR-10 batches) and
        # clean-fid FID on 50,000 samples (DDPM's count; the paper states none).
        "ci": {
            "lams": [0.0, 0.1, 0.2, 1.0],
            "seeds": [0, 1, 2],
            "n": 200,
            "solver_steps": 10,
            "batch": 1000,
        },
        "full": {
            "lams": [0.0, 0.1, 0.2, 1.0],
            "seeds": [0, 1, 2],
            "n": 50_000,
            "solver_steps": 20,
            "batch": 1000,
        },
    },
    "gm_sgm_tables": {
        # ci: 2-D ring (exact metric) + sklearn 8x8 digits (FD-digits), CPU, one thread.
        "ci": {
            "toy": {
                "steps": 5000,  # at 1,500 the MLPs smeared the ring's modes (measured)
                "batch": 256,
                "lr": 2e-3,
                "sigma_max": 4.0,
                "n": 2000,
                "iterations": [20, 50, 100, 200],
                "table3_iterations": [20, 50, 200],
                "betas": [1.5, 2.0, 3.0],
                "table5_steps": [20, 100],
                "ddgm_theta0": 1.0,
            },
            "images": {
                "dataset": "digits8x8",
                "net": "digits",
                "net_overrides": {"ch": 16},
                "sigma_data": 0.75,
                "sigma_max": 10.0,
                "steps": 1200,
                "batch": 64,
                "lr": 2e-3,
                "ema_decay": 0.999,
                # EDM's EMA ramp: at a constant 0.999 the EMA kept 0.999 ** 1200 = 30 % of
                # the random initialisation (and sampling the raw weights reversed Table 1)
                "ema_rampup": 0.05,
                "seeds": 1,  # seed only; the long profile trains seed, seed + 1, seed + 2
                "longer": 1,  # no longer-training control (the long profile: twice the steps)
                "n": 400,
                "iterations": [20, 50, 100],
                "control_iterations": [50],  # Table 1's headline column
                "metric": "FD-digits",
            },
        },

        # full: the paper's App. A.2 on CIFAR-10 (VE sigma_max = 50, NCSN++, batch 64;
        # GM-SGM 550k iterations, SGM = the same recipe) with Inception FID on 50k samples.
        "full": {
            "toy": {
                "steps": 20000,
                "batch": 512,
                "lr": 1e-3,
                "sigma_max": 4.0,
                "n": 20000,
                "iterations": [20, 50, 100, 200, 500, 1000],
                "table3_iterations": [50, 200, 250, 500],
                "betas": [1.5, 2.0, 3.0],
                "table5_steps": [20, 100],
                "ddgm_theta0": 1.0,
            },
            "images": {
                "dataset": "cifar10",
                "net": "ncsnpp_cifar10_ve",
                "net_overrides": {},
                "sigma_data": 0.5,
                "sigma_max": 50.0,
                "steps": 550_000,
                "batch": 64,
                "lr": 2e-4,
                "ema_decay": 0.999,
                "seeds": 3,
                "longer": 1,  # the paper's own budget; no longer-training control
                "n": 50_000,
                "iterations": [50, 100, 200, 250, 333, 400, 500, 1000],
                "control_iterations": [50, 200, 1000],
                "metric": "FID",
            },
            # App. A.2: CelebA-64 trained 230k iterations at batch 64 with the NCSN++
            # architecture; sigma_max = 90 (NCSNv2's value for CelebA-64). Selected with
            # -p dataset celeba64.
            "images_celeba64": {
                "dataset": "celeba64",
                "net": "ncsnpp_cifar10_ve",
                "net_overrides": {"resolution": 64},
                "sigma_data": 0.5,
                "sigma_max": 90.0,
                "steps": 230_000,
                "batch": 64,
                "lr": 2e-4,
                "ema_decay": 0.999,
                "seeds": 3,
                "longer": 1,  # the paper's own budget; no longer-training control
                "n": 50_000,
                "iterations": [20, 66, 80, 100, 200, 333, 400, 500],
                "control_iterations": [20, 100, 500],
                "metric": "FID",
            },
        },
    },
}


def _long(chapter: str, images: dict[str, Any]) -> dict[str, Any]:
    """A ``long`` profile: the chapter's ci data and models with the evidence the ci book's
    30 minutes cannot hold (``images`` overrides its digits settings); run with
    ``-p profile long -p results_dir results/long``, shown by the ci chapter."""
    ci = PROFILES[chapter]["ci"]
    return ci | {"images": ci["images"] | images}


# three seeds per digits model and a control trained twice as long (~30 minutes, 2 cores)
PROFILES["gm_sgm_tables"]["long"] = _long("gm_sgm_tables", {"seeds": 3, "longer": 2})


def get_profile(chapter: str, profile: str) -> dict[str, Any]:
    """The settings of ``chapter`` under ``profile`` ("ci", "full", or "long" where the
    chapter defines it); a clear error otherwise."""
    if chapter not in PROFILES:
        raise KeyError(f"no profiles for chapter {chapter!r}; known: {sorted(PROFILES)}")
    table = PROFILES[chapter]
    if profile not in table:
        raise ValueError(f"profile must be one of {sorted(table)}, got {profile!r}")
    return dict(table[profile])

"""The studies (gmdiff.study): every chapter's profiles open, a profile on a user's data
set refuses to open without it (before any kernel work, no notebook started), the full
profiles name models of their own, and the study's metric is the library's."""

from __future__ import annotations

import pytest
import torch
from fakes import fake_mnist
from test_data import fake_cifar

from gmdiff import metrics
from gmdiff.study import DATASETS, PROFILES, STUDY_DIR, Study, read

CHAPTERS = sorted(p.stem for p in STUDY_DIR.glob("*.yaml"))
KEYS = {"data", "datasets", "scores", "device", "threads", "models"}


def _user_data(chapter: str, profile: str) -> str | None:
    name = (read(chapter)[profile].get("study") or {}).get("data")
    return name if name is not None and DATASETS[name].howto else None


@pytest.fixture
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_every_chapter_has_a_study():
    notebooks = sorted(p.stem for p in (STUDY_DIR.parents[1] / "notebooks").glob("*.py"))
    assert CHAPTERS == notebooks


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_profiles_open_and_use_only_known_keys(chapter, keep_threads):
    table = read(chapter)
    assert {"ci", "full"} <= set(table) <= set(PROFILES)
    for profile, entries in table.items():
        assert set(entries.get("study") or {}) <= KEYS, (profile, entries["study"])
        if _user_data(chapter, profile) is None:
            study = Study.open(chapter, profile, seed=2)
            assert "study" not in study.sizes and study.seed == 2
            assert study.device in ("cpu", "cuda")


@pytest.mark.parametrize(
    "chapter,profile",
    [(c, p) for c in CHAPTERS for p in read(c) if _user_data(c, p)],
)
def test_a_profile_on_user_data_refuses_to_open_without_it(chapter, profile, tmp_path):
    name = _user_data(chapter, profile)
    for data_dir in (None, tmp_path / "missing"):
        with pytest.raises(FileNotFoundError) as err:
            Study.open(chapter, profile, data_dir=data_dir)
        assert "data_dir" in str(err.value) and name in str(err.value)
        assert DATASETS[name].howto in str(err.value)  # says how to provide it


def test_fid_profiles_check_the_inception_weights_at_open(tmp_path, monkeypatch):
    monkeypatch.setenv("GMDIFF_INCEPTION_DIR", str(tmp_path / "no-weights"))
    cifar = fake_cifar(tmp_path / "cifar").parent
    with pytest.raises(FileNotFoundError, match="Inception weights"):
        Study.open("smd_tables", "full", data_dir=cifar)
    # a chapter that trains on MNIST but scores no samples needs no Inception weights
    mnist = fake_mnist(tmp_path / "mnist")
    study = Study.open("gs_score_structure", "full", data_dir=mnist)
    assert study.images.metric == "FID" and study.images.overrides == [f'data.options.data_dir="{mnist}"']
    assert study.run_config("digits").data.options["data_dir"] == str(mnist)


def test_a_model_of_other_data_keeps_its_own_data_section(tmp_path, monkeypatch, keep_threads):
    """The full GS studies train on MNIST beside the zoo's toy GMM: the user's folder goes
    to the MNIST model only (the GMM's loader takes no data_dir: it used to be refused)."""
    from gmdiff import runs
    from gmdiff.config import load_config
    from gmdiff.study import CONFIG_DIR

    monkeypatch.setattr("gmdiff.metrics.inception_weights_dir", lambda *a: tmp_path)  # gs_teleportation
    mnist = fake_mnist(tmp_path / "mnist")
    for chapter in ("gs_score_structure", "gs_learning_dynamics", "gs_teleportation"):
        study = Study.open(chapter, "full", data_dir=mnist)
        gmm = study.run_config("gmm", seed=3)
        assert gmm.data.name == "low_rank_gmm" and "data_dir" not in gmm.data.options
        own = load_config(CONFIG_DIR / "zoo/gmm_mlp_full.yaml").data.options
        assert gmm.train.seed == 3 and gmm.data.options == own
        sample, _ = runs.data_of(gmm)  # its loader accepts the options
        assert sample(5, torch.Generator().manual_seed(0)).shape == (5, 16)
        assert study.run_config("digits").data.options["data_dir"] == str(mnist)


def test_the_full_profiles_train_models_of_their_own():
    """No full profile can silently run the ci models: where a chapter names trained
    models, its full profile names other run files (MNIST / long runs), and its data is
    a user's folder or the same shipped set at a larger size."""
    for chapter in CHAPTERS:
        ci, full = (read(chapter)[p].get("study") or {} for p in ("ci", "full"))
        for key, run in ci.get("models", {}).items():
            assert full["models"][key] != run, (chapter, key)


def test_dataset_alternatives(tmp_path, monkeypatch, keep_threads):
    with pytest.raises(ValueError, match=r"dataset must be one of \['cifar10', 'celeba64'\]"):
        Study.open("gm_sgm_tables", "full", dataset="imagenet")
    with pytest.raises(ValueError, match="dataset must be one of"):
        Study.open("gm_sgm_tables", "ci", dataset="celeba64")  # ci has the digits only
    monkeypatch.setattr("gmdiff.metrics.inception_weights_dir", lambda *a: tmp_path)
    celeba = Study.open("gm_sgm_tables", "full", dataset="celeba64", data_dir=tmp_path)
    cifar = Study.open("gm_sgm_tables", "full", data_dir=fake_cifar(tmp_path / "c").parent)
    assert celeba.images.name == "celeba64" and cifar.images.name == "cifar10"
    assert celeba["images"]["sigma_max"] == 90.0 and cifar["images"]["sigma_max"] == 50.0
    assert celeba["toy"] == cifar["toy"]


def test_threads_and_extends(keep_threads):
    torch.set_num_threads(2)
    Study.open("gmd_forward", "ci")
    assert torch.get_num_threads() == 1  # study: {threads: 1}
    ci, long = read("gm_sgm_tables")["ci"], read("gm_sgm_tables")["long"]
    assert long["images"] == ci["images"] | {"seeds": 3, "longer": 2}


def test_the_digits_metric_is_fd_digits(keep_threads):
    study = Study.open("gmd_tables", "ci")
    real, _ = study.images.load()
    x = real[:300] + 0.3 * torch.randn(300, *real.shape[1:], generator=torch.Generator().manual_seed(0))
    fd = study.images.frechet(real)(x)
    assert fd == metrics.frechet_distance_digits(x.clamp(-1, 1), real, study.images.classifier())
    assert study.images.config == {"name": "digits8x8"} and study.images.overrides == []


def test_every_run_file_trains_an_ema_free_of_its_initialisation():
    """Every run file that trains (all but the pretrained-checkpoint ones) passes the
    harness's EMA bound at its own step count, so no full profile is refused after a
    user has set it up (configs/zoo/mnist_edm.yaml once kept 8 %)."""
    from gmdiff.config import load_config
    from gmdiff.runs import check_ema

    files = [p for p in sorted(STUDY_DIR.parent.rglob("*.yaml"))
             if "studies" not in p.parts and not p.name.startswith("pretrained_")]  # fmt: skip
    assert len(files) >= 15
    for path in files:
        check_ema(load_config(path))

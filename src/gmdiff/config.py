"""What a run is: the run config, one YAML file (or the same mapping built in a chapter).

A run config has these sections (every key is checked; an unknown key raises an error
naming it):
``out_dir``   where checkpoint.pt, train_log.jsonl, config.yaml, samples.pt and
              metrics.json go (and .lock, held by the run training there).
``data``      ``name`` (ring2d, grid2d, low_rank_gmm, digits8x8, mnist5k, mnist32, cifar10,
              celeba64, lsun),
              ``options`` (arguments of that loader, e.g. ``data_dir``), ``hflip``
              (random horizontal flips), ``centered`` (false: images in [0, 1] instead
              of [-1, 1], as score_sde's VE models).
``model``     ``net`` (a name in ``gmdiff.nets.CONFIGS``), ``overrides`` (its fields),
              ``precond`` (edm, ve, score, vp: how the raw net becomes D(x, sigma)),
              ``sigma_data`` (EDM preconditioning and loss).
``loss``      ``name`` (edm, dsm, eps, smd, gm_ddpm) and ``options`` (edm: p_mean, p_std;
              dsm, eps: noise, a mapping ``{name: ..., **arguments}`` naming a noise model
              of :data:`gmdiff.noise.NOISES`, e.g. ``{name: gm_sgm, beta: 2}``; smd:
              n_eta, reduction, temperature; gm_ddpm: classifier_weight, GM-DDPM's
              offsets, lam and direction, being fields of its net config in ``model``).
``schedule``  ``name`` (edm, ve, vp_linear, ddpm_linear, ddpm_cosine) and ``options``:
              the noise process of the dsm/eps/smd losses and of sampling.
``train``     the fields of :class:`gmdiff.train.TrainConfig`.
``sample``    ``sampler`` (a name in ``gmdiff.samplers.SAMPLERS``), ``steps``, ``n``,
              ``batch``, ``seed``, ``options`` (sampler keywords; ``noise`` as in
              ``loss``, e.g. GM-SGM's mixture increments for ``ve_pc``).
``evaluate``  ``n_projections`` and ``seed`` of the sliced Wasserstein distance (the seed
              also draws the likelihood examples); ``fid_reference`` (a folder of images
              or an .npz of Inception statistics: FID with its protocol instead of the
              data-space distances), ``fid_mode`` (clean-fid's clean or
              legacy_tensorflow), ``inception_dir`` (the folder of clean-fid's Inception
              weights); ``likelihood_n`` (PF-ODE NLL / bits per dim of that many data
              examples), ``divergence`` (hutchinson or exact), ``dequantize`` (uniform
              dequantisation of 8-bit images); ``metrics`` (``[is, kid]``: Inception
              Score and KID through torch-fidelity, :mod:`gmdiff.fidelity`); see
              :mod:`gmdiff.commands` and the book's config reference.

Numbers: a float key also takes a string that parses as a float, since YAML 1.1 reads
``1e-3`` (no dot) as the string "1e-3"; true/false are refused where a number is expected.

A run is its config: the network is initialised from ``train.seed`` and every training
step draws from seeds derived from it, so two runs of one config give the same weights
(:mod:`gmdiff.runs` builds and trains them; :mod:`gmdiff.cli` is the command line).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from gmdiff.train import LATE_FIELDS, TrainConfig

# --------------------------------------------------------------------------------------
# Config schema
# --------------------------------------------------------------------------------------


@dataclass
class DataSection:
    name: str
    options: dict = field(default_factory=dict)
    hflip: bool = False
    centered: bool = True


@dataclass
class ModelSection:
    net: str
    overrides: dict = field(default_factory=dict)
    precond: str = "edm"
    sigma_data: float = 0.5


@dataclass
class LossSection:
    name: str = "edm"
    options: dict = field(default_factory=dict)


@dataclass
class ScheduleSection:
    name: str = "edm"
    options: dict = field(default_factory=dict)


@dataclass
class SampleSection:
    sampler: str = "heun"
    steps: int = 18
    n: int = 64
    batch: int = 1024
    seed: int = 0
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("steps", "n", "batch"):
            if getattr(self, key) < 1:
                raise ValueError(
                    f"sample.{key} = {getattr(self, key)!r} is out of range; sample.steps, "
                    "sample.n and sample.batch must be >= 1"
                )


@dataclass
class EvaluateSection:
    n_projections: int = 256
    seed: int = 0
    fid_reference: str = ""
    fid_mode: str = "clean"
    inception_dir: str = ""
    likelihood_n: int = 0
    divergence: str = "hutchinson"
    dequantize: bool = True
    metrics: list = field(default_factory=list)

    def __post_init__(self) -> None:
        checks = {
            "n_projections": (
                self.n_projections >= 1,
                "must be >= 1 (the sliced distance averages over that many directions)",
            ),
            "likelihood_n": (self.likelihood_n >= 0, "must be >= 0 (0: no likelihood)"),
            "fid_mode": (
                self.fid_mode in ("clean", "legacy_tensorflow"),
                "must be 'clean' or 'legacy_tensorflow'",
            ),
            "divergence": (
                self.divergence in ("hutchinson", "exact"),
                "must be 'hutchinson' or 'exact'",
            ),
        }
        for key, (ok, rule) in checks.items():
            if not ok:
                raise ValueError(f"evaluate.{key} = {getattr(self, key)!r} {rule}")


@dataclass
class RunConfig:
    out_dir: str
    data: DataSection
    model: ModelSection
    train: TrainConfig
    loss: LossSection = field(default_factory=LossSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    sample: SampleSection = field(default_factory=SampleSection)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)


_SCALARS = (bool, int, float, str, dict)
_HINTS = {int: " (a whole number, not true/false)", float: " (a number such as 0.001 or 1e-3)"}


def _typed(value: Any, t: type, path: str) -> Any:
    """``value`` checked against the scalar type ``t`` of config key ``path``.

    A bool is refused where a number is expected (bool is an int subclass, so
    ``steps: true`` would be 1 step). A float key takes an int or a string that parses as
    a float, as YAML 1.1 reads ``1e-3`` (no dot) as a string; it returns a float.
    """
    if isinstance(value, bool) and t is not bool:
        pass  # refused below
    elif t is float and isinstance(value, int | float | str):
        with contextlib.suppress(ValueError):
            return float(value)
    elif isinstance(value, t):
        return value
    raise ValueError(
        f"config key {path} must be of type {t.__name__}{_HINTS.get(t, '')}, got {value!r}"
    )


def _build(cls: type, raw: Any, where: str) -> Any:
    """Instantiate dataclass ``cls`` from a mapping, recursing into nested sections and
    naming any unknown, missing or mistyped key by its dotted path."""
    if not isinstance(raw, dict):
        raise ValueError(f"config section {where or '<top>'} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        keys = ", ".join(f"{where}.{k}".lstrip(".") for k in unknown)
        raise ValueError(f"unknown config key(s) {keys}; allowed here: {names}")
    kwargs = {}
    for k, v in raw.items():
        path, t = f"{where}.{k}".lstrip("."), hints[k]
        if is_dataclass(t):
            v = _build(t, v, path)
        elif t in _SCALARS:
            v = _typed(v, t, path)
        kwargs[k] = v
    required = [
        f.name
        for f in fields(cls)
        if f.default is MISSING and f.default_factory is MISSING and f.name not in raw
    ]
    if required:
        keys = [f"{where}.{k}".lstrip(".") for k in required]
        raise ValueError(f"the config lacks key(s) {keys}; add them (see configs/ for examples)")
    try:
        return cls(**kwargs)
    except TypeError as err:  # a missing required key
        raise ValueError(f"config section {where or '<top>'}: {err}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping holding one key twice (PyYAML keeps the last
    silently: a second ``train:`` section would replace the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            with contextlib.suppress(TypeError):  # an unhashable key: PyYAML's own error
                if key in seen:
                    raise DuplicateKeyError(key, seen[key], line)
                seen[key] = line
        return super().construct_mapping(node, deep)


class DuplicateKeyError(ValueError):
    def __init__(self, key: Any, first: int, again: int) -> None:
        super().__init__(key, first, again)
        self.key, self.first, self.again = key, first, again


def _parse_yaml(text: str, where: str) -> Any:
    """YAML safe load, a syntax error or a key given twice becoming one sentence naming
    ``where`` and the place."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except DuplicateKeyError as err:
        raise ValueError(
            f"{where} gives key {err.key!r} twice "
            + (
                f"on line {err.first}"
                if err.first == err.again
                else f"(lines {err.first} and {err.again})"
            )
            + " in one mapping; YAML would keep only the last: merge them into one"
        ) from None
    except yaml.YAMLError as err:
        mark, context = getattr(err, "problem_mark", None), getattr(err, "context", None)
        at = f", line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        if context and err.context_mark:
            problem += f" ({context} at line {err.context_mark.line + 1})"
        raise ValueError(f"{where} is not valid YAML{at}: {problem}") from err


def _apply_set(raw: dict, assignment: str) -> None:
    """Apply one ``section.key=value`` override (value parsed as YAML) to the raw config."""
    key, sep, value = assignment.partition("=")
    if not sep or not key:
        raise ValueError(f"--set expects section.key=value, got {assignment!r}")
    *parents, leaf = key.split(".")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ValueError(f"--set {assignment!r}: {p} is not a section")
    node[leaf] = _parse_yaml(value, f"the value of --set {assignment!r}")


#: The repository root: run files are ``configs/<name>.yaml`` below it.
REPO = Path(__file__).resolve().parents[2]


def run_file(path: str | Path) -> Path:
    """A run file's path: ``path`` where it exists or is absolute, else taken from the
    repository root (so ``configs/smd_digits.yaml`` works from any working directory)."""
    path = Path(path)
    return path if path.is_absolute() or path.exists() else REPO / path


def load_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Read, override and validate a run config."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found; see configs/ for examples")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"config file {path} is not UTF-8 text") from None
    raw = _parse_yaml(text, f"config file {path}")
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ValueError(f"config file {path} must hold a mapping of sections, got {raw!r}")
    sampler = _section(raw, "sample").get("sampler")
    for assignment in overrides:
        _apply_set(raw, assignment)
    _drop_other_samplers_options(raw, sampler, overrides)
    return _build(RunConfig, raw, "")


def _section(raw: dict, name: str) -> dict:
    section = raw.get(name)
    return section if isinstance(section, dict) else {}


def _drop_other_samplers_options(raw: dict, file_sampler: Any, overrides: list[str]) -> None:
    """A ``--set sample.sampler=...`` naming another sampler than the file's, with no
    ``--set sample.options...``, drops the file's ``sample.options``: they belong to the
    file's sampler (``gm_ddpm``'s ``strategy`` is no keyword of ``ddim``), as in
    :meth:`gmdiff.runs.Run.sample`."""
    sample = _section(raw, "sample")
    keys = [a.partition("=")[0].strip() for a in overrides]
    if (
        "sample.sampler" in keys
        and sample.get("sampler") != file_sampler
        and not any(k == "sample.options" or k.startswith("sample.options.") for k in keys)
        and "options" in sample
    ):
        del sample["options"]


#: The sections that, with ``train``, identify a run: a checkpoint resumes only a run
#: that agrees with it on them (sample, evaluate and out_dir may change).
RUN_SECTIONS = ("data", "model", "loss", "schedule")


def from_dict(raw: dict) -> RunConfig:
    """A run config from a mapping with the YAML file's sections (checked the same way);
    ``out_dir`` may be left out where the caller decides it (:func:`gmdiff.runs.load_or_train`)."""
    return _build(RunConfig, {"out_dir": "", **raw}, "")


def plain(obj: Any) -> Any:
    """Tuples -> lists, dataclasses -> dicts: a config as plain YAML/JSON data."""
    if is_dataclass(obj):
        obj = asdict(obj)
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


#: ``train`` fields that do not change the trained weights (how often and where to log, how
#: often to save, how many loader workers read the same batches).
BOOKKEEPING = ("log_every", "ckpt_every", "num_workers", "prefetch_factor", "log")


def identity(cfg: RunConfig) -> dict[str, Any]:
    """What determines the trained weights of ``cfg``: its run sections and ``train``
    (without :data:`BOOKKEEPING`, and without a :data:`gmdiff.train.LATE_FIELDS` field at
    its default, so hashes of runs cached before those fields existed stay the same)."""
    out = {name: plain(getattr(cfg, name)) for name in RUN_SECTIONS}
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.name in LATE_FIELDS}
    train = {
        k: v
        for k, v in plain(cfg.train).items()
        if k not in BOOKKEEPING and not (k in defaults and v == defaults[k])
    }
    return out | {"train": train}


def sha(cfg: RunConfig) -> str:
    """A short hash of :func:`identity`: two configs that train the same weights share it."""
    blob = json.dumps(identity(cfg), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]

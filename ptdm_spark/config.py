"""Configuration: ``conf/base.yaml`` <- ``conf/<profile>.yaml`` <- ``--conf FILE|NAME`` <- ``--set``.

``conf/`` is package data (``ptdm_spark/conf``), found from any folder; see :func:`conf_dir`.

The merged tree is validated once into frozen, typed dataclasses. Each stage receives its own
section (``cfg.process``, ``cfg.ingest``...), never the whole tree. ``base.yaml`` is the single
place where defaults live: the dataclasses declare types, not values, and a key missing from the
merged tree is an error just like an unknown one.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import hashlib
import json
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ptdm_spark.errors import ConfigError

PROFILES = ("local", "cluster")
PROGRESS = ("ptdm", "spark", "off")  # spark.progress: ptdm's lines, Spark's console bars, nothing


def file_uri(path: Path) -> str:
    """``file://`` + the absolute ``path``, not percent-encoded: Hadoop takes the path of a
    ``file:`` string as it is, so ``Path.as_uri``'s ``My%20Data`` would be a folder of that name
    beside the ``My Data`` a plain path names."""
    return "file://" + str(Path(path).absolute())


@dataclass(frozen=True)
class LakehouseConfig:
    root: str
    catalog_dir: str

    def __post_init__(self) -> None:
        if not self.root.strip():
            raise ConfigError("lakehouse.root: must not be empty")

    @property
    def is_local(self) -> bool:
        return "://" not in self.root or self.root.startswith("file:")

    def table_path(self, dataset: str, table: str) -> str:
        return f"{self.root_uri.rstrip('/')}/{dataset}/{table}"

    @property
    def root_uri(self) -> str:
        """The root as a URI Spark and Delta accept (:func:`file_uri` for local paths)."""
        if self.is_local:
            return file_uri(Path(self.root.removeprefix("file:")).expanduser().resolve())
        return self.root

    @property
    def catalog_path(self) -> Path:
        """Local folder of the persistent catalog (embedded Derby metastore + warehouse)."""
        if self.catalog_dir:
            return Path(self.catalog_dir).expanduser().resolve()
        if not self.is_local:
            raise ConfigError("lakehouse.catalog_dir: must be set (a local folder) when lakehouse.root is remote")
        return Path(self.root.removeprefix("file:")).expanduser().resolve() / "_catalog"


@dataclass(frozen=True)
class SparkConfig:
    master: str
    app_name: str
    driver_memory: str
    shuffle_partitions: int
    log_level: str
    progress: str
    conf: Mapping[str, str]

    def __post_init__(self) -> None:
        # true / false (the key's old boolean form): Spark's own bars / none.
        progress = {"true": "spark", "false": "off"}.get(self.progress.lower(), self.progress)
        if progress not in PROGRESS:
            raise ConfigError(f"spark.progress: {self.progress!r} is not one of {', '.join(PROGRESS)}")
        object.__setattr__(self, "progress", progress)
        levels = ("ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF")
        if self.log_level.upper() not in levels:
            raise ConfigError(f"spark.log_level: {self.log_level!r} is not one of {', '.join(levels)}")
        if self.shuffle_partitions < 1:
            raise ConfigError("spark.shuffle_partitions: must be at least 1")


@dataclass(frozen=True)
class IngestConfig:
    extensions: tuple[str, ...]
    archive_extensions: tuple[str, ...]
    max_bytes: int
    labels: str
    label_names: tuple[str, ...]
    open_cost_bytes: int
    max_partition_bytes: int
    skip_hidden: bool

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ConfigError("ingest.max_bytes: must be positive")
        bad = [e for e in self.extensions if not e or "." in e or "/" in e]
        if bad:
            raise ConfigError(f"ingest.extensions: {bad[0]!r} is not an extension (write jpg, not .jpg or *.jpg)")


@dataclass(frozen=True)
class NormalizeConfig:
    format: str
    quality: int
    size_policy: str
    size: int
    background: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.format not in ("png", "jpeg", "webp"):
            raise ConfigError(f"process.normalize.format: {self.format!r} is not one of png, jpeg, webp")
        if not 1 <= self.quality <= 100:
            raise ConfigError("process.normalize.quality: must be between 1 and 100")
        if self.size_policy not in ("keep", "fit", "crop", "pad"):
            raise ConfigError(
                f"process.normalize.size_policy: {self.size_policy!r} is not one of keep, fit, crop, pad"
            )
        if self.size < 1:
            raise ConfigError("process.normalize.size: must be positive")
        if len(self.background) != 3 or not all(0 <= c <= 255 for c in self.background):
            raise ConfigError("process.normalize.background: must be three integers 0..255 (R, G, B)")


@dataclass(frozen=True)
class QualityConfig:
    blur_min: float
    dark_max: float
    bright_min: float
    contrast_min: float
    entropy_min: float
    aspect_max: float
    near_constant_max: float
    grayscale_tolerance: float

    def __post_init__(self) -> None:
        for name in ("blur_min", "entropy_min", "aspect_max", "grayscale_tolerance"):
            if getattr(self, name) < 0:
                raise ConfigError(f"process.quality.{name}: must be 0 or more (got {getattr(self, name):g})")
        for name in ("dark_max", "bright_min", "contrast_min", "near_constant_max"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"process.quality.{name}: must be between 0 and 1 (got {getattr(self, name):g})")
        if self.aspect_max and self.aspect_max < 1:
            raise ConfigError(f"process.quality.aspect_max: must be 1 or more (got {self.aspect_max:g})")
        if self.entropy_min > 8:
            raise ConfigError(f"process.quality.entropy_min: must be at most 8 bits (got {self.entropy_min:g})")


BLUR_METHODS = ("gaussian", "pixelate", "fill")


@dataclass(frozen=True)
class PrivacyConfig:
    """``process.privacy``: face detection and blurring (off by default)."""

    blur_faces: bool
    min_score: float
    min_size: int
    max_side: int
    method: str
    strength: float
    margin: float

    def __post_init__(self) -> None:
        if not 0 < self.min_score <= 1:
            raise ConfigError(f"process.privacy.min_score: must be above 0 and at most 1 (got {self.min_score:g})")
        if self.min_size < 12:
            raise ConfigError(f"process.privacy.min_size: must be at least 12 pixels (got {self.min_size})")
        if self.max_side < self.min_size:
            raise ConfigError(f"process.privacy.max_side: must be at least min_size ({self.min_size}), got {self.max_side}")
        if self.method not in BLUR_METHODS:
            raise ConfigError(f"process.privacy.method: {self.method!r} is not one of {', '.join(BLUR_METHODS)}")
        if not 0 < self.strength <= 1:
            raise ConfigError(f"process.privacy.strength: must be above 0 and at most 1 (got {self.strength:g})")
        if not 0 <= self.margin <= 1:
            raise ConfigError(f"process.privacy.margin: must be between 0 and 1 (got {self.margin:g})")


@dataclass(frozen=True)
class ProcessConfig:
    max_pixels: int
    max_side: int
    min_side: int
    batch_bytes: int
    max_records_per_batch: int
    normalize: NormalizeConfig
    quality: QualityConfig
    privacy: PrivacyConfig

    def __post_init__(self) -> None:
        if self.max_pixels < 1 or self.max_side < 1 or self.min_side < 1:
            raise ConfigError("process.max_pixels, max_side and min_side must be positive")


@dataclass(frozen=True)
class LandingConfig:
    webhdfs_url: str
    user: str
    workers: int


QUALITY_FLAGS = (
    "blurry",
    "dark",
    "bright",
    "low_contrast",
    "low_information",
    "extreme_aspect",
    "near_constant",
    "grayscale",
    "has_faces",  # process.privacy.blur_faces found (and blurred) at least one face
)


@dataclass(frozen=True)
class PhashConfig:
    max_distance: int
    confirm_above: int
    dhash_max_distance: int
    blocks: int
    min_side: int
    skip_flags: tuple[str, ...]
    colour_max_distance: float
    member_max_distance: int
    detail_max_distance: float = 42.0
    inner_search: bool = True
    inner_max_distance: int = 4
    inner_blocks: int = 6
    small_min_side: int = 8
    alpha_max: float = 0.23

    def __post_init__(self) -> None:
        if not 1 <= self.small_min_side <= self.min_side:
            raise ConfigError(f"dedupe.phash.small_min_side: must be between 1 and min_side ({self.min_side})")
        if not 0.0 <= self.colour_max_distance <= 2.0:
            raise ConfigError("dedupe.phash.colour_max_distance: must be between 0 and 2")
        if not 0.0 <= self.detail_max_distance <= 1000.0:
            raise ConfigError("dedupe.phash.detail_max_distance: must be between 0 and 1000")
        if not 0.0 <= self.alpha_max <= 1.0:
            raise ConfigError("dedupe.phash.alpha_max: must be between 0 and 1 (1: no alpha check)")
        if self.inner_search:
            if not 0 <= self.inner_max_distance <= self.max_distance:
                raise ConfigError(f"dedupe.phash.inner_max_distance: must be between 0 and max_distance "
                                  f"({self.max_distance})")
            if not self.inner_max_distance < self.inner_blocks <= 64:
                raise ConfigError(f"dedupe.phash.inner_blocks: must be more than inner_max_distance "
                                  f"({self.inner_max_distance}) and at most 64")
        if not self.max_distance <= self.member_max_distance <= 64:
            raise ConfigError(f"dedupe.phash.member_max_distance: must be between max_distance ({self.max_distance}) "
                              "and 64")
        if not 0 <= self.max_distance <= 32:
            raise ConfigError("dedupe.phash.max_distance: must be between 0 and 32")
        if not 0 <= self.confirm_above <= self.max_distance:
            raise ConfigError(f"dedupe.phash.confirm_above: must be between 0 and max_distance ({self.max_distance})")
        if not 0 <= self.dhash_max_distance <= 64:
            raise ConfigError("dedupe.phash.dhash_max_distance: must be between 0 and 64")
        if not self.max_distance < self.blocks <= 64:
            raise ConfigError(f"dedupe.phash.blocks: must be more than max_distance ({self.max_distance}) "
                              "and at most 64")
        bad = [f for f in self.skip_flags if f not in QUALITY_FLAGS]
        if bad:
            raise ConfigError(f"dedupe.phash.skip_flags: unknown flag {bad[0]!r} (known: {', '.join(QUALITY_FLAGS)})")


@dataclass(frozen=True)
class FlatConfig:
    max_distance: float

    def __post_init__(self) -> None:
        if not 0.02 <= self.max_distance <= 1.0:
            raise ConfigError("dedupe.flat.max_distance: must be between 0.02 and 1")


DEDUPE_METHODS = ("pixel", "phash", "flat")


@dataclass(frozen=True)
class DedupeConfig:
    methods: tuple[str, ...]
    phash: PhashConfig
    flat: FlatConfig
    driver_components_max_edges: int

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in DEDUPE_METHODS]
        if bad:
            raise ConfigError(f"dedupe.methods: unknown method {bad[0]!r} (available: {', '.join(DEDUPE_METHODS)})")
        if self.driver_components_max_edges < 0:
            raise ConfigError("dedupe.driver_components_max_edges: must be 0 or more")




SPLIT_SOURCES = ("ignore", "keep")


@dataclass(frozen=True)
class CollectConfig:
    user_agent: str
    connect_timeout: float
    read_timeout: float
    attempts: int
    max_attempts: int
    backoff: float
    max_retry_after: float
    max_bytes: int
    max_redirects: int
    honour_robots: bool
    per_host_connections: int
    per_host_rate: float
    threads: int
    batch_urls: int
    partitions: int

    def __post_init__(self) -> None:
        for name in ("attempts", "max_attempts", "per_host_connections", "threads", "batch_urls", "max_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"collect.{name}: must be at least 1")
        for name in ("connect_timeout", "read_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"collect.{name}: must be positive (seconds)")
        for name in ("backoff", "max_retry_after", "per_host_rate", "max_redirects", "partitions"):
            if getattr(self, name) < 0:
                raise ConfigError(f"collect.{name}: must not be negative")


@dataclass(frozen=True)
class WatchConfig:
    poll_seconds: int
    max_files_per_batch: int
    every: int

    def __post_init__(self) -> None:
        for name in ("poll_seconds", "max_files_per_batch", "every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"watch.{name}: must be at least 1")


@dataclass(frozen=True)
class CurateConfig:
    exclude_flags: tuple[str, ...]
    splits: Mapping[str, float]
    seed: str
    source_splits: str

    def __post_init__(self) -> None:
        bad = [f for f in self.exclude_flags if f not in QUALITY_FLAGS]
        if bad:
            raise ConfigError(f"curate.exclude_flags: unknown flag {bad[0]!r} (known: {', '.join(QUALITY_FLAGS)})")
        if not self.splits or any(v < 0 for v in self.splits.values()):
            raise ConfigError("curate.splits: needs at least one split with a non-negative ratio")
        if abs(sum(self.splits.values()) - 1.0) > 1e-6:
            raise ConfigError(f"curate.splits: ratios must add up to 1 (they add up to {sum(self.splits.values()):g})")
        if self.source_splits not in SPLIT_SOURCES:
            raise ConfigError(f"curate.source_splits: {self.source_splits!r} is not one of {', '.join(SPLIT_SOURCES)}")


LABEL_POLICIES = ("first", "majority", "drop_ambiguous")


@dataclass(frozen=True)
class LabelsConfig:
    policy: str

    def __post_init__(self) -> None:
        if self.policy not in LABEL_POLICIES:
            raise ConfigError(f"labels.policy: {self.policy!r} is not one of {', '.join(LABEL_POLICIES)}")


@dataclass(frozen=True)
class AugmentConfig:
    splits: tuple[str, ...]
    partitions: int

    def __post_init__(self) -> None:
        if not self.splits:
            raise ConfigError("augment.splits: name at least one split (e.g. [train])")
        if self.partitions < 0:
            raise ConfigError("augment.partitions: must be >= 0 (0 = two per core)")


@dataclass(frozen=True)
class SqlServerConfig:
    host: str
    port: int
    metastore_port: int
    driver_memory: str
    metastore_memory: str
    start_timeout: int

    def __post_init__(self) -> None:
        for key, port in (("port", self.port), ("metastore_port", self.metastore_port)):
            if not 1 <= port <= 65535:
                raise ConfigError(f"sql.server.{key}: {port} is not a TCP port (1..65535)")
        if self.port == self.metastore_port:
            raise ConfigError("sql.server.metastore_port: must differ from sql.server.port")
        if self.start_timeout < 1:
            raise ConfigError("sql.server.start_timeout: must be at least 1 (seconds)")


@dataclass(frozen=True)
class SqlConfig:
    remote: str
    server: SqlServerConfig

    def __post_init__(self) -> None:
        if self.remote not in ("", "local") and not self.remote.startswith("sc://"):
            raise ConfigError(f"sql.remote: {self.remote!r} is not sc://host:port, local or empty")


OUTLIER_SCORES = ("blur", "brightness", "contrast", "entropy", "channel_spread", "aspect_ratio", "width", "height")


@dataclass(frozen=True)
class GalleryConfig:
    per_section: int
    largest_clusters: int
    thumb_side: int

    def __post_init__(self) -> None:
        if self.per_section < 0 or self.largest_clusters < 0:
            raise ConfigError("analysis.gallery: per_section and largest_clusters must be 0 or more")
        if not 16 <= self.thumb_side <= 512:
            raise ConfigError("analysis.gallery.thumb_side: must be 16..512 (pixels)")


@dataclass(frozen=True)
class AnalysisConfig:
    outlier_scores: tuple[str, ...]
    outlier_threshold: float
    freshness_days: int
    gallery: GalleryConfig

    def __post_init__(self) -> None:
        bad = [s for s in self.outlier_scores if s not in OUTLIER_SCORES]
        if bad:
            raise ConfigError(f"analysis.outlier_scores: unknown score {bad[0]!r} (known: {', '.join(OUTLIER_SCORES)})")
        if self.outlier_threshold <= 0:
            raise ConfigError("analysis.outlier_threshold: must be above 0 (a robust z-score)")
        if self.freshness_days < 1:
            raise ConfigError("analysis.freshness_days: must be at least 1")


@dataclass(frozen=True)
class ExportConfig:
    shard_bytes: int
    stream_partition_bytes: int

    def __post_init__(self) -> None:
        if self.shard_bytes < 1 or self.stream_partition_bytes < 1:
            raise ConfigError("export.shard_bytes and export.stream_partition_bytes: must be positive")


@dataclass(frozen=True)
class ShareConfig:
    host: str
    port: int
    endpoint: str
    token_expires: str
    url_ttl_seconds: int
    refresh_seconds: float
    log_flush_seconds: float
    secret_file: str

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"share.port: {self.port} is not a TCP port (1..65535)")
        if self.url_ttl_seconds < 1:
            raise ConfigError("share.url_ttl_seconds: must be at least 1")
        if self.refresh_seconds < 0 or self.log_flush_seconds <= 0:
            raise ConfigError("share.refresh_seconds must be >= 0 and share.log_flush_seconds > 0")
        if self.endpoint and not self.endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"share.endpoint: {self.endpoint!r} is not an http:// or https:// URL")


ENCRYPTION_MODES = ("none", "parquet")


@dataclass(frozen=True)
class EncryptionConfig:
    """``security.encryption``: Parquet modular encryption of every dataset table (see
    :mod:`ptdm_spark.protect.encryption`). Only the shape is checked here; the key file itself is
    read and checked before a session starts (:func:`ptdm_spark.protect.encryption.check`)."""

    mode: str
    key_file: str
    footer_key: str
    column_key: str
    columns: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.mode not in ENCRYPTION_MODES:
            raise ConfigError(f"security.encryption.mode: {self.mode!r} is not one of {', '.join(ENCRYPTION_MODES)}")
        if self.mode == "parquet" and not self.key_file.strip():
            raise ConfigError("security.encryption.key_file: must name a key file when mode is parquet")
        for name in ("footer_key", "column_key"):
            value = getattr(self, name)
            if not value or any(c in value for c in ":;, \t"):
                raise ConfigError(f"security.encryption.{name}: {value!r} is not a key name "
                                  "(letters, digits, - and _; a name of the key file)")
        if self.mode == "parquet" and not self.columns:
            raise ConfigError("security.encryption.columns: name at least one column (the image bytes: content, image)")

    @property
    def enabled(self) -> bool:
        return self.mode == "parquet"


@dataclass(frozen=True)
class SecurityConfig:
    encryption: EncryptionConfig


@dataclass(frozen=True)
class Config:
    lakehouse: LakehouseConfig
    spark: SparkConfig
    ingest: IngestConfig
    process: ProcessConfig
    landing: LandingConfig
    collect: CollectConfig
    watch: WatchConfig
    dedupe: DedupeConfig
    curate: CurateConfig
    sql: SqlConfig
    analysis: AnalysisConfig
    export: ExportConfig
    labels: LabelsConfig
    augment: AugmentConfig
    share: ShareConfig
    security: SecurityConfig
    profile: str = "local"
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @property
    def hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the effective config, stamped on every run."""
        blob = json.dumps(_plain(self.raw), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return _plain(self.raw)


def conf_dir() -> Path:
    """Where ``base.yaml`` and the profiles live: ``$PTDM_CONF_DIR``, else the package's own
    ``conf/`` (package data, so an installed wheel finds it from any folder; the checkout's
    top-level ``conf`` is a link to the same folder)."""
    env = os.environ.get("PTDM_CONF_DIR")
    d = Path(env) if env else Path(__file__).resolve().parent / "conf"
    if not (d / "base.yaml").is_file():
        where = "$PTDM_CONF_DIR" if env else "the installed package"
        raise ConfigError(f"{d / 'base.yaml'} not found ({where}): reinstall ptdm-spark or fix PTDM_CONF_DIR")
    return d


def dataset_confs() -> list[str]:
    """Names of the dataset configs that ship with ptdm (``--conf NAME``), e.g. ``fashion-mnist``."""
    return sorted(p.stem for p in (conf_dir() / "datasets").glob("*.yaml"))


def conf_file(name: str | os.PathLike[str]) -> Path:
    """``--conf`` argument -> file: a path, or the name of a packaged dataset config.

    ``--conf conf/datasets/fashion-mnist.yaml`` works in the checkout; ``--conf fashion-mnist``
    works anywhere (the same file, from the package).
    """
    path = Path(name).expanduser()
    if path.is_file():
        return path
    text = str(name)
    if "/" not in text and not text.endswith((".yaml", ".yml")):
        packaged = conf_dir() / "datasets" / f"{text}.yaml"
        if packaged.is_file():
            return packaged
        raise ConfigError(f"--conf {text}: no such file, nor a packaged dataset config "
                          f"(packaged: {', '.join(dataset_confs()) or 'none'})")
    raise ConfigError(f"--conf: no such file: {path}")


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{what}: no such file: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{what}: {path} is not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what}: {path} must hold a mapping of sections")
    return data


def _merge(base: dict[str, Any], over: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            if prefix + k in _FREE_MAPPINGS:  # free keys: merged one level (set a ratio to 0 to drop a split)
                out[k] = {**out[k], **v}
            else:
                out[k] = _merge(dict(out[k]), v, prefix + k + ".")
        else:
            out[k] = v
    return out


# Mapping-typed keys whose own keys are free (not validated against a dataclass).
_FREE_MAPPINGS = {"spark.conf", "curate.splits"}


def parse_set(item: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], parsed value). Values are YAML scalars or lists."""
    if "=" not in item:
        raise ConfigError(f"--set {item}: expected key=value, for example --set lakehouse.root=/data/lh")
    key, _, text = item.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item}: the key is empty")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    parts = key.split(".")
    for free in _FREE_MAPPINGS:  # spark.conf.spark.executor.memory -> [spark, conf, spark.executor.memory]
        head = free.split(".")
        if parts[: len(head)] == head and len(parts) > len(head):
            parts = head + [".".join(parts[len(head):])]
    return parts, value


def _apply_set(tree: dict[str, Any], parts: list[str], value: Any) -> dict[str, Any]:
    over: Any = value
    for p in reversed(parts):
        over = {p: over}
    return _merge(tree, over)


def load_config(
    profile: str = "local",
    conf_files: typing.Sequence[str | os.PathLike[str]] = (),
    overrides: typing.Sequence[str] = (),
) -> Config:
    """Load, merge and validate the configuration.

    Raises:
        ConfigError: a file is missing or not YAML, a key is unknown or missing, a value has the
            wrong type or is out of range. The message names the key.
    """
    if profile not in PROFILES:
        raise ConfigError(f"--profile {profile}: unknown profile (available: {', '.join(PROFILES)})")
    d = conf_dir()
    tree = _read_yaml(d / "base.yaml", "base config")
    tree = _merge(tree, _read_yaml(d / f"{profile}.yaml", f"profile {profile}"))
    for f in conf_files:
        tree = _merge(tree, _read_yaml(conf_file(f), "--conf"))
    for item in overrides:
        parts, value = parse_set(item)
        tree = _apply_set(tree, parts, value)
    built = _build(Config, tree, "", skip={"profile", "raw"})
    return dataclasses.replace(built, profile=profile, raw=types.MappingProxyType(tree))


def _build(cls: type, data: Any, prefix: str, skip: set[str] = frozenset()) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown config key (known here: {', '.join(fields)})")
    kwargs = {}
    for name in fields:
        key = prefix + name
        if name not in data:
            raise ConfigError(f"{key}: missing config key")
        kwargs[name] = _coerce(hints[name], data[name], key)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    if origin is tuple:
        (item_tp, _) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return tuple(_coerce(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (collections.abc.Mapping, dict):
        _, val_tp = typing.get_args(tp)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return types.MappingProxyType(
            {str(k): (str(v) if val_tp is str else _coerce(val_tp, v, f"{key}.{k}")) for k, v in value.items()}
        )
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # a bug in this module, not misuse


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj

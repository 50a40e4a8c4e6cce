"""Encryption at rest on any filesystem: Parquet modular encryption of every dataset table.

With ``security.encryption.mode: parquet`` every Parquet data file a ptdm session writes is
encrypted by Spark's Parquet writer (AES-GCM). Two Java classes of ours (``ptdm_spark/java``,
built into ``ptdm-crypto.jar`` beside the Delta jars by ``scripts/setup.sh`` / ``ptdm setup``) do
the key work:

* ``ptdm.crypto.DatasetCryptoFactory``, Parquet's properties-driven crypto factory told per file
  which columns it holds: the image columns (``security.encryption.columns``, ``content`` and
  ``image``) under ``column_key``, the footer and every other column under ``footer_key``; Delta
  checkpoints (``_delta_log/``) stay plaintext;
* ``ptdm.crypto.KeyFileKmsClient``, the KMS client: master keys are named lines of a local key
  file (``name: base64-key``), and data keys are wrapped with AES-GCM under them.

The settings are session SQL conf (copied by Spark into the Hadoop conf of every read and write),
so :func:`apply` can switch them on and off on a running session, and ``ptdm spark-conf`` prints
them as ``spark.hadoop.*`` properties for ``spark-sql``. Readers without a JVM (the sharing
server, the loader) open the same files with pyarrow (:func:`decryption_properties`), with a
Python twin of the KMS client: the wrapped-key format is ours, the key material in the files is
Parquet's own and pyarrow reads it.

This module never imports pyspark.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ptdm_spark.config import EncryptionConfig
from ptdm_spark.errors import UsageError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

FACTORY_CLASS = "ptdm.crypto.DatasetCryptoFactory"
KMS_CLIENT_CLASS = "ptdm.crypto.KeyFileKmsClient"
JAR_NAME = "ptdm-crypto.jar"
KEY_LENGTHS = (16, 24, 32)
_NONCE = 12
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")

# Every Hadoop property ptdm sets for encryption; apply() unsets them all when mode is none.
PROPERTY_KEYS = (
    "parquet.crypto.factory.class",
    "parquet.encryption.kms.client.class",
    "parquet.encryption.key.access.token",
    "ptdm.encryption.key.file",
    "ptdm.encryption.footer.key",
    "ptdm.encryption.column.key",
    "ptdm.encryption.columns",
)


def read_key_file(path: str | os.PathLike[str]) -> dict[str, bytes]:
    """The master keys of a key file: one ``name: base64-key`` per line (16, 24 or 32 bytes);
    blank lines and ``#`` comments are skipped. The Java KMS client reads the same format.

    Raises:
        UsageError: the file is missing or unreadable, a line is not ``name: base64-key``, a key
            is not base64 or has another length, or a name comes twice. One line, naming the
            file and the line; never the key.
    """
    p = Path(path).expanduser()
    where = "security.encryption.key_file"
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{where}: {p}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{where}: {p} is a folder, not a key file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: cannot read {p} ({getattr(exc, 'strerror', None) or exc})") from None
    keys: dict[str, bytes] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not _NAME.match(name) or not value:
            raise UsageError(f"{where}: {p} line {n}: expected 'name: base64-key'")
        try:
            key = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(f"{where}: {p} line {n}: the key of {name!r} is not base64") from None
        if len(key) not in KEY_LENGTHS:
            raise UsageError(f"{where}: {p} line {n}: the key of {name!r} has {len(key) * 8} bits "
                             "(128, 192 or 256 needed)")
        if name in keys:
            raise UsageError(f"{where}: {p} line {n}: key {name!r} is named twice")
        keys[name] = key
    if not keys:
        raise UsageError(f"{where}: {p} holds no key (lines 'name: base64-key')")
    return keys


def check(enc: EncryptionConfig) -> dict[str, bytes] | None:
    """Read and check the key file before anything else happens (None when encryption is off):
    both named keys must be in it.

    Raises:
        UsageError: see :func:`read_key_file`; or a key the config names is not in the file.
    """
    if not enc.enabled:
        return None
    keys = read_key_file(enc.key_file)
    for option in ("footer_key", "column_key"):
        name = getattr(enc, option)
        if name not in keys:
            raise UsageError(f"security.encryption.{option}: key {name!r} is not in {Path(enc.key_file).expanduser()} "
                             f"(it holds: {', '.join(sorted(keys))})")
    return keys


def access_token(enc: EncryptionConfig) -> str:
    """Parquet's key tools cache KMS clients and unwrapped keys per access token: a token per key
    file (path, size and modification time; never its content) makes a changed or another key file
    get a fresh client in a long-lived JVM."""
    p = Path(enc.key_file).expanduser().resolve()
    try:
        st = p.stat()
        stamp = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        stamp = str(p)
    return "ptdm-" + hashlib.sha256(stamp.encode()).hexdigest()[:24]


def hadoop_properties(enc: EncryptionConfig) -> dict[str, str]:
    """The Hadoop properties that make Spark's Parquet reader and writer encrypt and decrypt
    (empty when encryption is off)."""
    if not enc.enabled:
        return {}
    return {
        "parquet.crypto.factory.class": FACTORY_CLASS,
        "parquet.encryption.kms.client.class": KMS_CLIENT_CLASS,
        "parquet.encryption.key.access.token": access_token(enc),
        "ptdm.encryption.key.file": str(Path(enc.key_file).expanduser().resolve()),
        "ptdm.encryption.footer.key": enc.footer_key,
        "ptdm.encryption.column.key": enc.column_key,
        "ptdm.encryption.columns": ",".join(enc.columns),
    }


def spark_properties(enc: EncryptionConfig) -> dict[str, str]:
    """The same, as Spark properties for a new JVM (``ptdm spark-conf``, the SQL endpoint), with
    :data:`IO_ENCRYPTION`."""
    props = {f"spark.hadoop.{k}": v for k, v in hadoop_properties(enc).items()}
    return {**props, **IO_ENCRYPTION} if enc.enabled else props


# Spark's own files on local disk — shuffle blocks, spills, cached and broadcast blocks under
# spark.local.dir — hold the rows a job moves (raw_images.content when process repartitions,
# images.image when curate joins): plaintext image bytes unless Spark encrypts them too (AES-CTR,
# a fresh key per application, never stored). A JVM-wide setting: it takes effect only in a
# session started with it.
IO_ENCRYPTION = {"spark.io.encryption.enabled": "true"}


def apply(spark: "SparkSession", enc: EncryptionConfig) -> None:
    """Make ``spark`` encrypt what it writes and decrypt what it reads as ``enc`` says, or neither
    (mode none: the settings are removed). Session SQL conf, which Spark copies into the Hadoop
    conf of every file scan and write, so a session that is already running follows the config of
    the command that uses it."""
    props = hadoop_properties(enc)
    for key in PROPERTY_KEYS:
        if key in props:
            spark.conf.set(key, props[key])
        elif spark.conf.get(key, None) is not None:
            spark.conf.unset(key)


# --- errors ------------------------------------------------------------------------------------

_NO_KEYS = "No keys available"
_PYARROW_NO_KEYS = "Could not read encrypted metadata"  # pyarrow (deltalake's readers) without keys
_CRYPTO_MARKERS = ("ParquetCryptoRuntimeException", "KeyAccessDeniedException", "ptdm.crypto.", _PYARROW_NO_KEYS)


def crypto_error(exc: BaseException) -> str | None:
    """One line for an exception that Parquet's encryption caused while Spark read a table, or
    None for any other exception: reading an encrypted file without the keys, or with a key file
    that lacks (or has another) master key."""
    text = str(exc)
    if not any(m in text for m in _CRYPTO_MARKERS):
        return None
    file = re.search(r"reading file (\S+?)\.?\s", text)
    where = f" ({file.group(1)})" if file else ""
    if _NO_KEYS in text or "encrypted footer" in text or _PYARROW_NO_KEYS in text:
        return (f"a table is encrypted (Parquet modular encryption){where} and this session has no key for it: "
                "set security.encryption.mode=parquet and security.encryption.key_file=PATH")
    if "ClassNotFoundException" in text and "ptdm.crypto" in text:
        return f"the encryption classes are not on Spark's classpath: run scripts/setup.sh or ptdm setup ({JAR_NAME})"
    denied = re.findall(r"KeyAccessDeniedException: ([^\n]+)", text)  # the innermost cause says why
    reason = denied[-1].strip() if denied else next(
        (line.strip() for line in text.splitlines() if "ParquetCryptoRuntimeException" in line), "decryption failed")
    return f"cannot decrypt a table{where}: {reason}"


# --- pyarrow (no JVM) --------------------------------------------------------------------------


def wrap_key(master: bytes, name: str, key: bytes) -> str:
    """What ``KeyFileKmsClient.wrapKey`` returns: base64(nonce | AES-GCM(key) | tag), the master
    key's name as associated data."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(_NONCE)
    return base64.b64encode(nonce + AESGCM(master).encrypt(nonce, key, name.encode())).decode()


def unwrap_key(master: bytes, name: str, wrapped: str | bytes) -> bytes:
    """The inverse of :func:`wrap_key` (and of the Java client's).

    Raises:
        UsageError: the wrapped key does not open with this master key (another key of that name).
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.b64decode(wrapped, validate=True)
        if len(raw) < _NONCE + 16:  # a nonce and a GCM tag at least
            raise ValueError("too short")
        return AESGCM(master).decrypt(raw[:_NONCE], raw[_NONCE:], name.encode())
    except InvalidTag:
        raise UsageError(f"master key {name!r} of the key file does not open this file's keys "
                         "(another key under the same name?)") from None
    except (ValueError, binascii.Error):  # what the Java client answers with access denied
        raise UsageError(f"the key wrapped under master key {name!r} in this file is damaged (not a wrapped key)") from None


def kms_client(keys: Mapping[str, bytes]) -> type:
    """A pyarrow ``KmsClient`` class over these named master keys: the Python twin of the Java
    ``KeyFileKmsClient`` (the same AES-GCM wrap, so either side opens the other's files)."""
    import pyarrow.parquet.encryption as pe

    def _master(name: str) -> bytes:
        if name not in keys:
            raise UsageError(f"master key {name!r} is not in the key file")
        return keys[name]

    class _KeyFileKms(pe.KmsClient):
        def __init__(self, _config: Any) -> None:
            super().__init__()

        def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
            return wrap_key(_master(master_key_identifier), master_key_identifier, key_bytes)

        def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
            return unwrap_key(_master(master_key_identifier), master_key_identifier, wrapped_key)

    return _KeyFileKms


def decryption_properties(keys: Mapping[str, bytes]) -> Any:
    """pyarrow ``FileDecryptionProperties`` that open files written with these master keys
    (plaintext files open too)."""
    import pyarrow.parquet.encryption as pe

    return pe.CryptoFactory(kms_client(keys)).file_decryption_properties(pe.KmsConnectionConfig())


def open_parquet(source: Any, keys: Mapping[str, bytes] | None) -> Any:
    """``pyarrow.parquet.ParquetFile`` of a path or file, decrypting with ``keys`` when given."""
    import pyarrow.parquet as pq

    if keys is None:
        return pq.ParquetFile(source)
    return pq.ParquetFile(source, decryption_properties=decryption_properties(keys))


def read_delta(uri: str, keys: Mapping[str, bytes] | None, *, version: int | None = None,
               storage_options: dict[str, str] | None = None) -> Any:
    """A Delta table as one pyarrow Table, read with deltalake (the log) and pyarrow (the files,
    decrypted with ``keys`` when given): deltalake alone cannot open encrypted files."""
    import pyarrow as pa
    from deltalake import DeltaTable

    t = DeltaTable(uri, version=version, storage_options=storage_options)
    if keys is None:
        return t.to_pyarrow_table()
    ds = t.to_pyarrow_dataset()
    parts = [open_parquet(ds.filesystem.open_input_file(f), keys).read() for f in ds.files]
    if not parts:
        return ds.to_table()
    return pa.concat_tables(parts, promote_options="default").select(ds.schema.names)


def is_encrypted(f: Any) -> bool:
    """True for a Parquet file whose footer is encrypted (it ends with ``PARE``, not ``PAR1``);
    ``f`` is a seekable binary file."""
    f.seek(-4, os.SEEK_END)
    return f.read(4) == b"PARE"


def plain_copy(source: Any, dest: Path, keys: Mapping[str, bytes]) -> int:
    """Write the rows of the encrypted Parquet file ``source`` to ``dest`` as plain Parquet (the
    schema and its metadata kept); returns the new file's size."""
    import pyarrow.parquet as pq

    pf = open_parquet(source, keys)
    part = dest.with_name(dest.name + ".part")
    try:
        with pq.ParquetWriter(part, pf.schema_arrow) as w:
            for g in range(pf.metadata.num_row_groups):
                w.write_table(pf.read_row_group(g))
        part.replace(dest)
    finally:
        part.unlink(missing_ok=True)  # a failed copy leaves no half-decrypted file
    return dest.stat().st_size


# The tables a dataset command reads rows from first; their files tell whether the dataset is
# encrypted at rest (encryption switched on later leaves older files plain, newer ones not).
CHECKED_TABLES = ("raw_images", "images", "curated")


def check_dataset_readable(spark: "SparkSession | None", enc: EncryptionConfig, table_path) -> None:
    """:func:`check_table_readable` for each of :data:`CHECKED_TABLES` of a dataset
    (``table_path``: table name -> its path, ``LakehouseConfig.table_path`` bound to the dataset)."""
    for table in CHECKED_TABLES:
        check_table_readable(spark, enc, table_path(table))


def _oldest_and_newest(files: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The (mtime, path) pairs of the oldest and the newest file (one when they are the same)."""
    if not files:
        return []
    return sorted({min(files), max(files)})


def check_table_readable(spark: "SparkSession | None", enc: EncryptionConfig, table_path: str) -> None:
    """Stop with one line, before any Spark job, when encryption is off but the table's data
    files are encrypted. The Parquet tails (``PARE``) of its oldest and newest data files are
    looked at — a table written partly before and partly after encryption was switched on (or
    off) has one of each. Local tables are read directly (``spark`` may be None); others through
    the session's Hadoop filesystem.

    Raises:
        UsageError: the table is encrypted and this command has no key for it.
    """
    if enc.enabled:
        return
    encrypted = False
    local = table_path.removeprefix("file://").removeprefix("file:") if "://" not in table_path or \
        table_path.startswith("file:") else None
    if local is not None:
        try:
            files = [(e.stat().st_mtime_ns, e.path) for e in os.scandir(local)
                     if e.name.endswith(".parquet") and e.is_file() and e.stat().st_size >= 4]
        except OSError:
            return
        for _, path in _oldest_and_newest(files):
            with open(path, "rb") as f:
                encrypted = encrypted or is_encrypted(f)
    elif spark is not None:
        from ptdm_spark.io import sources

        fs, path = sources.hadoop_fs(spark, table_path)
        if not fs.exists(path):
            return
        statuses = {st.getPath().toString(): st for st in fs.listStatus(path)
                    if st.getPath().getName().endswith(".parquet") and st.getLen() >= 4}
        for _, name in _oldest_and_newest([(st.getModificationTime(), n) for n, st in statuses.items()]):
            st = statuses[name]
            stream = fs.open(st.getPath())
            try:
                stream.seek(st.getLen() - 4)
                encrypted = encrypted or bytes(stream.read() for _ in range(4)) == b"PARE"
            finally:
                stream.close()
    if encrypted:
        raise UsageError(f"{table_path} is encrypted (Parquet modular encryption) and this command has no key for it: "
                         "set security.encryption.mode=parquet and security.encryption.key_file=PATH")

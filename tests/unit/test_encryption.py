"""Encryption at rest without a JVM: the key file, the config, the Spark properties, the
one-line errors, and the Python twin of the KMS client (pyarrow)."""

from __future__ import annotations

import base64
import os

import pytest

from ptdm_spark.config import load_config
from ptdm_spark.errors import ConfigError, UsageError
from ptdm_spark.protect import encryption
from ptdm_spark.session import spark_properties
from tests.conftest import run_cli

pytestmark = pytest.mark.unit


def b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode()


def key_file(tmp_path, text: str):
    p = tmp_path / "keys"
    p.write_text(text)
    return p


def test_key_file_lines_name_base64_keys_of_128_192_256_bits(tmp_path):
    k16, k24, k32 = os.urandom(16), os.urandom(24), os.urandom(32)
    p = key_file(tmp_path, f"# master keys\n\nfooter: {base64.b64encode(k32).decode()}\n"
                           f"  images :{base64.b64encode(k16).decode()}  \nold-1: {base64.b64encode(k24).decode()}\n")
    assert encryption.read_key_file(p) == {"footer": k32, "images": k16, "old-1": k24}


@pytest.mark.parametrize("text,message", [
    ("footer {k}\n", r"line 1: expected 'name: base64-key'"),
    ("# c\nfooter: {k}\n: {k}\n", r"line 3: expected 'name: base64-key'"),
    ("footer:\n", r"line 1: expected 'name: base64-key'"),
    ("foo bar: {k}\n", r"line 1: expected 'name: base64-key'"),
    ("footer: not*base64!\n", r"line 1: the key of 'footer' is not base64"),
    ("footer: " + base64.b64encode(b"x" * 20).decode() + "\n",
     r"line 1: the key of 'footer' has 160 bits \(128, 192 or 256 needed\)"),
    ("footer: {k}\nfooter: {k}\n", r"line 2: key 'footer' is named twice"),
    ("# nothing\n\n", r"holds no key"),
])
def test_a_bad_key_file_is_one_line_naming_the_line(tmp_path, text, message):
    p = key_file(tmp_path, text.format(k=b64(32)))
    with pytest.raises(UsageError, match=message) as err:
        encryption.read_key_file(p)
    assert "\n" not in str(err.value) and str(p) in str(err.value)


def test_a_missing_or_unreadable_key_file(tmp_path):
    with pytest.raises(UsageError, match=r"security.encryption.key_file: .*/nope: no such file"):
        encryption.read_key_file(tmp_path / "nope")
    with pytest.raises(UsageError, match=r"is a folder, not a key file"):
        encryption.read_key_file(tmp_path)
    p = key_file(tmp_path, f"footer: {b64(16)}\n")
    p.chmod(0)
    if os.geteuid() != 0:  # root reads anything
        with pytest.raises(UsageError, match=r"cannot read"):
            encryption.read_key_file(p)


def cfg_with(tmp_path, *sets: str):
    return load_config(overrides=[f"lakehouse.root={tmp_path / 'lh'}", *sets])


def test_config_is_validated_and_off_by_default(tmp_path):
    enc = cfg_with(tmp_path).security.encryption
    assert enc.mode == "none" and not enc.enabled and encryption.check(enc) is None
    assert encryption.hadoop_properties(enc) == {}
    with pytest.raises(ConfigError, match=r"security.encryption.mode: 'aes' is not one of none, parquet"):
        cfg_with(tmp_path, "security.encryption.mode=aes")
    with pytest.raises(ConfigError, match=r"security.encryption.key_file: must name a key file when mode is parquet"):
        cfg_with(tmp_path, "security.encryption.mode=parquet")
    with pytest.raises(ConfigError, match=r"security.encryption.column_key: 'a:b' is not a key name"):
        cfg_with(tmp_path, "security.encryption.column_key=a:b")
    with pytest.raises(ConfigError, match=r"security.encryption.nope: unknown config key"):
        cfg_with(tmp_path, "security.encryption.nope=1")


def test_check_needs_both_named_keys(tmp_path):
    p = key_file(tmp_path, f"footer: {b64(32)}\n")
    enc = cfg_with(tmp_path, "security.encryption.mode=parquet", f"security.encryption.key_file={p}").security.encryption
    with pytest.raises(UsageError, match=r"security.encryption.column_key: key 'images' is not in .*keys \(it holds: footer\)"):
        encryption.check(enc)
    p.write_text(f"footer: {b64(32)}\nimages: {b64(16)}\n")
    assert set(encryption.check(enc)) == {"footer", "images"}


def test_spark_conf_prints_the_settings_for_spark_sql(tmp_path):
    p = key_file(tmp_path, f"footer: {b64(32)}\nimages: {b64(32)}\n")
    cfg = cfg_with(tmp_path, "security.encryption.mode=parquet", f"security.encryption.key_file={p}")
    props = spark_properties(cfg.spark, cfg.lakehouse, encryption=cfg.security.encryption)
    assert props["spark.hadoop.parquet.crypto.factory.class"] == "ptdm.crypto.DatasetCryptoFactory"
    assert props["spark.hadoop.parquet.encryption.kms.client.class"] == "ptdm.crypto.KeyFileKmsClient"
    assert props["spark.hadoop.ptdm.encryption.key.file"] == str(p.resolve())
    assert props["spark.hadoop.ptdm.encryption.columns"] == "content,image"
    assert any(j.endswith("/ptdm-crypto.jar") for j in props["spark.jars"].split(",")), "scripts/setup.sh builds it"
    assert props["spark.io.encryption.enabled"] == "true"  # shuffle and spill files too
    secrets = [line.split(": ", 1)[1] for line in p.read_text().splitlines()]
    assert not any(s in v for s in secrets for v in props.values())  # the path, never the keys
    proc = run_cli("spark-conf", "--set", f"lakehouse.root={tmp_path / 'lh'}", "--set", "security.encryption.mode=parquet",
                   "--set", f"security.encryption.key_file={p}", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "spark.hadoop.parquet.crypto.factory.class ptdm.crypto.DatasetCryptoFactory" in proc.stdout.splitlines()
    assert "spark.io.encryption.enabled true" in proc.stdout.splitlines()
    assert not any(s in proc.stdout + proc.stderr for s in secrets)


def test_a_bad_key_file_stops_a_command_before_anything_is_written(tmp_path):
    p = key_file(tmp_path, f"footer: {b64(32)}\nimages: {b64(15)}\n")
    src = tmp_path / "src"
    src.mkdir()
    for command in (["run", str(src), "--dataset", "d"], ["spark-conf"]):
        proc = run_cli(*command, "--set", f"lakehouse.root={tmp_path / 'lh'}", "--set", "security.encryption.mode=parquet",
                       "--set", f"security.encryption.key_file={p}", timeout=120)
        assert proc.returncode == 2
        assert proc.stderr.strip() == (f"ptdm {command[0]}: error: security.encryption.key_file: {p} line 2: "
                                       "the key of 'images' has 120 bits (128, 192 or 256 needed)")
    assert not (tmp_path / "lh").exists()


def test_python_wrap_is_the_format_of_the_java_client():
    master = os.urandom(32)
    wrapped = encryption.wrap_key(master, "images", b"k" * 16)
    raw = base64.b64decode(wrapped)
    assert len(raw) == 12 + 16 + 16  # nonce | ciphertext | GCM tag
    assert encryption.unwrap_key(master, "images", wrapped) == b"k" * 16
    with pytest.raises(UsageError, match="does not open this file's keys"):
        encryption.unwrap_key(os.urandom(32), "images", wrapped)
    with pytest.raises(UsageError, match="does not open this file's keys"):  # the name is bound to the key
        encryption.unwrap_key(master, "footer", wrapped)


def test_pyarrow_round_trip_with_the_python_kms(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pyarrow.parquet.encryption as pe

    keys = {"footer": os.urandom(32), "images": os.urandom(16)}

    Kms = encryption.kms_client(keys)

    props = pe.CryptoFactory(Kms).file_encryption_properties(
        pe.KmsConnectionConfig(), pe.EncryptionConfiguration(footer_key="footer", column_keys={"images": ["content"]}))
    table = pa.table({"image_id": ["a"], "content": [b"\x89PNG\r\n\x1a\nrest"]})
    path = tmp_path / "f.parquet"
    with pq.ParquetWriter(path, table.schema, encryption_properties=props) as w:
        w.write_table(table)
    assert b"\x89PNG" not in path.read_bytes()
    with pytest.raises(OSError, match="encrypted"):
        pq.ParquetFile(path)
    assert encryption.open_parquet(path, keys).read().equals(table)


@pytest.mark.parametrize("text,expected", [
    ("org.apache.spark.SparkException: [FAILED_READ_FILE.NO_HINT] Encountered error while reading file "
     "file:/lh/d/images/part-0.parquet.  SQLSTATE: KD001\n...\nCaused by: org.apache.parquet.crypto."
     "ParquetCryptoRuntimeException: Trying to read file with encrypted footer. No keys available",
     "a table is encrypted (Parquet modular encryption) (file:/lh/d/images/part-0.parquet) and this session has no key "
     "for it: set security.encryption.mode=parquet and security.encryption.key_file=PATH"),
    ("Caused by: org.apache.parquet.crypto.KeyAccessDeniedException: Footer key: access denied\n"
     "Caused by: org.apache.parquet.crypto.KeyAccessDeniedException: master key 'images' is not in the key file /k\n\tat x",
     "cannot decrypt a table: master key 'images' is not in the key file /k"),
    ("java.io.FileNotFoundException: /x", None),
])
def test_crypto_errors_become_one_line(text, expected):
    assert encryption.crypto_error(RuntimeError(text)) == expected


def test_a_command_without_the_key_stops_before_spark_reads_an_encrypted_table(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pyarrow.parquet.encryption as pe

    keys = {"footer": os.urandom(32)}

    Kms = encryption.kms_client(keys)

    table = tmp_path / "raw_images"
    table.mkdir()
    data = pa.table({"image_id": ["a"]})
    pq.write_table(data, table / "part-0.parquet")
    off = cfg_with(tmp_path).security.encryption
    encryption.check_table_readable(None, off, table.as_uri())  # plaintext: fine
    props = pe.CryptoFactory(Kms).file_encryption_properties(
        pe.KmsConnectionConfig(), pe.EncryptionConfiguration(footer_key="footer", uniform_encryption=True))
    (table / "part-0.parquet").unlink()
    with pq.ParquetWriter(table / "part-1.parquet", data.schema, encryption_properties=props) as w:
        w.write_table(data)
    with pytest.raises(UsageError, match=r"raw_images is encrypted \(Parquet modular encryption\) and this command has no key"):
        encryption.check_table_readable(None, off, table.as_uri())
    encryption.check_table_readable(None, off, str(tmp_path / "missing"))  # no table yet: nothing to say


def _encrypt_in_place(path, keys):
    """Rewrite the Parquet file ``path`` encrypted: ``content`` under the key 'images' when both
    are there, everything else (or everything) under 'footer'."""
    import pyarrow.parquet as pq
    import pyarrow.parquet.encryption as pe

    data = pq.read_table(path)
    how = ({"column_keys": {"images": ["content"]}} if "images" in keys and "content" in data.column_names
           else {"uniform_encryption": True})
    props = pe.CryptoFactory(encryption.kms_client(keys)).file_encryption_properties(
        pe.KmsConnectionConfig(), pe.EncryptionConfiguration(footer_key="footer", **how))
    with pq.ParquetWriter(path, data.schema, encryption_properties=props) as w:
        w.write_table(data)


def test_the_no_key_check_sees_a_table_encrypted_later_and_every_read_table(tmp_path):
    """Encryption switched on after a table's first files: its oldest file is plain, its newest
    not; and a dataset whose raw_images are plain but whose images are encrypted."""
    import time

    import pyarrow as pa
    import pyarrow.parquet as pq

    keys = {"footer": os.urandom(32)}
    off = cfg_with(tmp_path).security.encryption
    ds = tmp_path / "lh" / "d"
    for table in ("raw_images", "images"):
        (ds / table).mkdir(parents=True)
        pq.write_table(pa.table({"image_id": ["a"]}), ds / table / "part-0.parquet")
    time.sleep(0.02)
    for name in ("part-1.parquet", "part-2.parquet"):  # newer files, written with the mode on
        pq.write_table(pa.table({"image_id": ["b"]}), ds / "raw_images" / name)
        _encrypt_in_place(ds / "raw_images" / name, keys)
    os.utime(ds / "raw_images" / "part-0.parquet", ns=(1, 1))  # the plain one is the oldest
    with pytest.raises(UsageError, match="raw_images is encrypted"):
        encryption.check_table_readable(None, off, str(ds / "raw_images"))
    # plain raw_images, encrypted images: the dataset check names images
    for f in (ds / "raw_images").glob("part-[12].parquet"):
        f.unlink()
    _encrypt_in_place(ds / "images" / "part-0.parquet", keys)
    encryption.check_table_readable(None, off, str(ds / "raw_images"))
    with pytest.raises(UsageError, match=r"/d/images is encrypted"):
        encryption.check_dataset_readable(None, off, lambda t: str(ds / t))


def test_pyarrow_without_keys_is_the_same_one_line(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"image_id": ["a"]}), path)
    _encrypt_in_place(path, {"footer": os.urandom(32)})
    with pytest.raises(OSError) as err:
        pq.read_table(path)
    assert encryption.crypto_error(err.value) == (
        "a table is encrypted (Parquet modular encryption) and this session has no key for it: "
        "set security.encryption.mode=parquet and security.encryption.key_file=PATH")


def test_a_failed_plain_copy_leaves_no_partial_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"image_id": ["a"], "content": [b"\x89PNG\r\n\x1a\n"]}), path)
    footer = os.urandom(32)
    _encrypt_in_place(path, {"footer": footer, "images": os.urandom(32)})
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UsageError):  # the footer opens, the image column's key is another one
        encryption.plain_copy(path, out / "plain.parquet", {"footer": footer, "images": os.urandom(32)})
    assert list(out.iterdir()) == []


def test_the_share_server_never_hands_out_ciphertext(tmp_path):
    """Without the key the server refuses an encrypted file (a recipient could not open it); with
    it, the file is served decrypted. Folders of servers that died are removed by the next."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ptdm_spark.sharing import server

    keys = {"footer": os.urandom(32)}
    plain, enc = tmp_path / "plain.parquet", tmp_path / "enc.parquet"
    table = pa.table({"image_id": ["a"], "content": [b"\x89PNG\r\n\x1a\nrest"]})
    pq.write_table(table, plain)
    pq.write_table(table, enc)
    _encrypt_in_place(enc, keys)
    files = server.PlainFiles(None)
    assert files.get(str(plain), plain.stat().st_size) == (str(plain), plain.stat().st_size)
    with pytest.raises(server.ApiError, match="encrypted at rest and the server has no key"):
        files.get(str(enc), enc.stat().st_size)
    stale = tmp_path / f"{server.PLAIN_PREFIX}999999999-x"  # no such pid
    stale.mkdir()
    mine = tmp_path / f"{server.PLAIN_PREFIX}{os.getpid()}-x"
    mine.mkdir()
    assert server.remove_stale_plain_dirs(str(tmp_path)) == [stale]
    assert mine.exists() and not stale.exists()
    keyed = server.PlainFiles(keys)
    try:
        served, size = keyed.get(str(enc), enc.stat().st_size)
        assert pq.read_table(served).equals(table) and size == os.path.getsize(served)
    finally:
        keyed.close()


@pytest.mark.parametrize("wrapped", ["!!!", "AAAA", base64.b64encode(b"x" * 20).decode()])
def test_a_damaged_wrapped_key_is_one_line(wrapped):
    with pytest.raises(UsageError, match="in this file is damaged"):
        encryption.unwrap_key(os.urandom(32), "images", wrapped)

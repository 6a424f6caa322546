"""Keys and URIs outside the store are refused: `..`, links leading out, other schemes,
other buckets and prefixes. Nothing outside is read or written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from troupe.store import InvalidNameError, NotFoundError, OutsideStoreError, Store


@pytest.fixture()
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("not for functions")
    return secret


@pytest.mark.parametrize(
    "key",
    [
        "../outside/secret.txt",
        "datasets/../../outside/secret.txt",
        "a/b/../../../outside/secret.txt",
        "..",
    ],
)
def test_dotdot_escapes_are_refused(file_store: Store, outside: Path, key: str) -> None:
    with pytest.raises(OutsideStoreError) as raised:
        file_store.read_bytes(key)
    message = str(raised.value)
    assert repr(key) in message
    assert file_store.url in message
    assert "use a key relative to the store" in message
    with pytest.raises(OutsideStoreError):
        file_store.write_bytes(key, b"overwritten")
    assert outside.read_text() == "not for functions"


def test_dotdot_that_stays_inside_is_normalised(file_store: Store) -> None:
    file_store.write_bytes("a/b.txt", b"inside")
    assert file_store.resolve("a/c/../b.txt") == file_store.resolve("a/b.txt")
    assert file_store.read_bytes("x/../a/b.txt") == b"inside"


def test_absolute_paths_and_file_uris_outside_the_root_are_refused(
    file_store: Store, outside: Path
) -> None:
    for uri in [str(outside), f"file://{outside}", "/etc/passwd", "file:///etc/passwd"]:
        with pytest.raises(OutsideStoreError, match="not under the store's directory"):
            file_store.read_bytes(uri)
    # The root's sibling whose name merely starts with the root's name is outside too.
    root = file_store.url.removeprefix("file://")
    with pytest.raises(OutsideStoreError):
        file_store.resolve(f"file://{root}-evil/x")


def test_absolute_paths_and_uris_inside_the_root_are_accepted(file_store: Store) -> None:
    url = file_store.write_bytes("datasets/d.csv", b"a\n")
    path = url.removeprefix("file://")
    assert file_store.resolve(path) == url
    assert file_store.resolve(f"file://localhost{path}") == url
    assert file_store.read_bytes(path) == b"a\n"


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.com/data.csv",
        "https://example.com/data.csv",
        "s3://bucket/data.csv",
        "gs://bucket/data.csv",
        "ftp:data.csv",
        "file+evil:///x",
    ],
)
def test_foreign_schemes_are_refused(file_store: Store, uri: str) -> None:
    with pytest.raises(OutsideStoreError, match="uses the scheme"):
        file_store.resolve(uri)


def test_symlinked_file_leading_out_is_refused(file_store: Store, outside: Path) -> None:
    file_store.write_bytes("datasets/real.csv", b"ok")
    root = Path(file_store.url.removeprefix("file://"))
    os.symlink(outside, root / "datasets" / "leak.csv")

    with pytest.raises(OutsideStoreError, match="symbolic link"):
        file_store.read_bytes("datasets/leak.csv")
    with pytest.raises(OutsideStoreError, match="symbolic link"):
        file_store.write_bytes("datasets/leak.csv", b"overwritten")
    assert outside.read_text() == "not for functions"
    # Listing skips the link instead of failing on it.
    assert file_store.list("datasets") == ["datasets/real.csv"]


def test_symlinked_folder_leading_out_is_refused_even_for_new_files(
    file_store: Store, outside: Path
) -> None:
    root = Path(file_store.url.removeprefix("file://"))
    root.mkdir(parents=True)
    os.symlink(outside.parent, root / "escape")

    with pytest.raises(OutsideStoreError, match="symbolic link"):
        file_store.write_bytes("escape/planted.txt", b"x")
    with pytest.raises(OutsideStoreError):
        file_store.read_bytes("escape/secret.txt")
    assert not (outside.parent / "planted.txt").exists()


def test_symlinks_that_stay_inside_are_followed(file_store: Store) -> None:
    file_store.write_bytes("datasets/real.csv", b"ok")
    root = Path(file_store.url.removeprefix("file://"))
    os.symlink(root / "datasets" / "real.csv", root / "datasets" / "alias.csv")
    assert file_store.read_bytes("datasets/alias.csv") == b"ok"


def test_a_root_reached_through_a_link_still_confines(tmp_path: Path, outside: Path) -> None:
    (tmp_path / "real-root").mkdir()
    os.symlink(tmp_path / "real-root", tmp_path / "link-root")
    store = Store(f"file://{tmp_path}/link-root")

    url = store.write_bytes("a.txt", b"via link")
    assert url == f"file://{tmp_path}/link-root/a.txt"
    assert store.read_bytes(f"{tmp_path}/real-root/a.txt") == b"via link"
    with pytest.raises(OutsideStoreError):
        store.read_bytes("../outside/secret.txt")


def test_nul_characters_are_refused(file_store: Store) -> None:
    with pytest.raises(OutsideStoreError, match="NUL"):
        file_store.resolve("datasets/a\x00.csv")


def test_the_root_itself_is_not_an_object_to_read(file_store: Store) -> None:
    with pytest.raises(NotFoundError, match="root"):
        file_store.read_bytes("")


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("../x", "leads out"),
        ("lab/../../x", "leads out"),
        ("/etc/passwd", "absolute paths"),
        ("s3://another-bucket/lab/store/x", "not in the bucket"),
        ("s3://{bucket}/lab/other/x", "not under the store's prefix"),
        ("s3://{bucket}/lab/store-evil/x", "not under the store's prefix"),
        ("s3://{bucket}/lab/store/../other/x", "not under the store's prefix"),
        ("file:///etc/passwd", "uses the scheme 'file'"),
        ("https://example.com/x", "uses the scheme 'https'"),
    ],
)
def test_s3_store_refuses_other_buckets_prefixes_and_schemes(
    s3_store: Store, s3_bucket: str, uri: str, reason: str
) -> None:
    uri = uri.format(bucket=s3_bucket)
    with pytest.raises(OutsideStoreError, match=reason) as raised:
        s3_store.read_bytes(uri)
    assert s3_store.url in str(raised.value)


def test_s3_uris_inside_the_prefix_are_accepted(s3_store: Store, s3_bucket: str) -> None:
    url = s3_store.write_bytes("datasets/a.csv", b"1")
    assert url == f"s3://{s3_bucket}/lab/store/datasets/a.csv"
    assert s3_store.read_bytes(f"s3://{s3_bucket}/lab/store/x/../datasets/a.csv") == b"1"
    assert s3_store.key_of(url) == "datasets/a.csv"
    assert s3_store.read_bytes(f"S3://{s3_bucket}/lab/store/datasets/a.csv") == b"1"


@pytest.mark.parametrize("key", ["", ".locks/abc.lock", "a/.tmp-x", "datasets/../.locks/x"])
def test_the_root_and_the_stores_own_names_cannot_be_written(store: Store, key: str) -> None:
    with pytest.raises(InvalidNameError, match=r"start with '\.'"):
        store.write_bytes(key, b"x")
    with pytest.raises(InvalidNameError):
        store.update_json(key, lambda value: value)
    assert store.list("") == []

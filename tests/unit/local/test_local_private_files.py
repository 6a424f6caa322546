"""Owner-only files: 0600 from their first byte whatever the umask, replaced whole."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from troupe.local.host.private_files import write_owner_only


def test_a_file_is_owner_only_even_under_an_open_umask(tmp_path: Path) -> None:
    target = tmp_path / "kubeconfig"
    target.write_text("an earlier run's file, readable by everyone")
    target.chmod(0o644)
    (tmp_path / ".kubeconfig.tmp").write_text("left by a crash")  # replaced, not reused
    previous = os.umask(0)
    try:
        write_owner_only(target, b"token: secret")
    finally:
        os.umask(previous)

    assert target.read_bytes() == b"token: secret"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kubeconfig"]

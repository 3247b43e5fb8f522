"""Whole-or-nothing writes: the old file or the new one, never half, and links stay links."""

from __future__ import annotations

import pytest

from barkwatch.files import atomic_path, write_atomic


def test_a_write_replaces_the_file_and_a_failed_one_leaves_it_and_no_debris(tmp_path):
    target = tmp_path / "status.json"
    write_atomic(target, b"old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError, match="disk gone"):
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"half")
            raise RuntimeError("disk gone")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


def test_a_symbolic_link_is_followed_and_stays_a_link(tmp_path):
    # models/default.pt links into the package: re-exporting through the link must rewrite the package's file.
    (tmp_path / "package").mkdir()
    real = tmp_path / "package" / "default.onnx"
    real.write_bytes(b"old")
    link = tmp_path / "default.onnx"
    link.symlink_to("package/default.onnx")
    write_atomic(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new" and link.read_bytes() == b"new"

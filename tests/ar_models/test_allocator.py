"""ar_models.allocator: glibc malloc tuning is applied on glibc Linux and skipped when disabled."""

from __future__ import annotations

import platform
import sys

import pytest

from ar_models.allocator import DISABLE_VARIABLE, keep_freed_memory

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt exists on glibc Linux only")
def test_applies_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (DISABLE_VARIABLE, "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    assert keep_freed_memory() is True


@pytest.mark.parametrize(
    "variable", [DISABLE_VARIABLE, "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"]
)
def test_user_settings_win(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "1")
    assert keep_freed_memory() is False

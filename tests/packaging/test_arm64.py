"""arm64 (Graviton) builds: with the template's Architecture parameter at arm64 and
EDGEROUTE_ARCH=arm64, the layers' Makefile installs aarch64 wheels. Every compiled
extension of the built core layer is checked by its ELF header (no emulator needed)."""

from __future__ import annotations

from pathlib import Path

from tests.packaging.conftest import run_sam_build
from tests.packaging.test_build import ELF_MACHINE, elf_machine


def test_arm64_core_layer_holds_only_aarch64_extensions(tmp_path: Path) -> None:
    built = run_sam_build(
        tmp_path, "CoreLayer", "--parameter-overrides", "Architecture=arm64", arch="arm64"
    )
    site = built.build_dir / "CoreLayer" / "python"
    libs = sorted(site.rglob("*.so")) + sorted(site.rglob("*.so.*"))
    names = {lib.relative_to(site).parts[0] for lib in libs}
    assert {"pydantic_core", "cryptography", "aiohttp", "multidict"} <= names, sorted(names)
    wrong = [str(lib) for lib in libs if elf_machine(lib) != ELF_MACHINE["arm64"]]
    assert not wrong, wrong

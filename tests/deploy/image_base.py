"""A container base image made from Debian packages, for building ``deploy/Containerfile`` here.

No container registry is reachable from this machine, only Debian's package mirror, so the test
cannot pull the production base (an official Python slim image).  It bootstraps a minimal
bookworm with Python instead, once: the root file system is cached as a tarball under
``~/.cache/burst-image-base/<key>/`` where the key hashes the suite, variant and package list, and
the image itself lives in a buildah storage under the same cache folder.  Later runs reuse both.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

SUITE = "bookworm"
VARIANT = "minbase"
#: python3-venv brings ensurepip (pip) for the build stage; ca-certificates for TLS to PyPI.
PACKAGES = ("python3", "python3-venv", "ca-certificates")
#: overlay when the kernel allows it (here it does: minutes less per build than vfs, which copies
#: every layer in full); BURST_IMAGE_DRIVER=vfs for machines where it does not.
DRIVER = os.environ.get("BURST_IMAGE_DRIVER", "overlay")
CACHE = Path(os.environ.get("BURST_IMAGE_CACHE", Path.home() / ".cache" / "burst-image-base"))


def key() -> str:
    text = f"{SUITE} {VARIANT} {' '.join(sorted(PACKAGES))}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: This sandbox reaches PyPI through a TLS proxy whose CA only the host's bundle has; the base
#: carries that bundle, as a company's base image carries its own CA.
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
TLS_ENV = {"SSL_CERT_FILE": str(HOST_CA), "PIP_CERT": str(HOST_CA), "REQUESTS_CA_BUNDLE": str(HOST_CA)}


def base_tag() -> str:
    ca = hashlib.sha256(HOST_CA.read_bytes()).hexdigest()[:8] if HOST_CA.exists() else "none"
    return f"localhost/burst-test-base:{key()}-{ca}"


def storage_args() -> list[str]:
    """buildah's global options: a storage of its own (vfs works without kernel overlay support)."""
    root = CACHE / f"storage-{DRIVER}"
    return ["--root", str(root / "root"), "--runroot", str(root / "run"), "--storage-driver", DRIVER]


def apt_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt already uses on this machine (deb822 ``URIs:`` or one-line ``deb``)."""
    files = [*sorted((sources / "sources.list.d").glob("*.sources")), sources / "sources.list"]
    files += sorted((sources / "sources.list.d").glob("*.list"))
    for f in files:
        if not f.is_file():
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        for m in re.finditer(r"^URIs:\s*(\S+)", text, re.M):
            if "security" not in m.group(1):
                return m.group(1)
        for m in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
            if "security" not in m.group(1):
                return m.group(1)
    raise RuntimeError("no Debian mirror in /etc/apt: cannot debootstrap a base image")


def rootfs_tarball() -> Path:
    """The bootstrapped root file system as a tarball, made on first use (minutes), then cached."""
    out = CACHE / key() / "rootfs.tar"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=out.parent))
    try:
        target = work / "root"
        subprocess.run(
            [
                "debootstrap",
                f"--variant={VARIANT}",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(target),
                apt_mirror(),
            ],
            check=True,
            capture_output=True,
        )
        # an image needs no apt lists or caches; the build installs nothing with apt
        for junk in ("var/lib/apt/lists", "var/cache/apt/archives"):
            shutil.rmtree(target / junk, ignore_errors=True)
        tmp = out.with_suffix(".tmp")
        subprocess.run(["tar", "-C", str(target), "-cf", str(tmp), "."], check=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def ensure_base_image() -> str:
    """The base image's tag in the cached buildah storage, committed from the tarball if missing."""
    tag = base_tag()
    have = subprocess.run(
        ["buildah", *storage_args(), "inspect", "--type", "image", tag], check=False, capture_output=True
    )
    if have.returncode == 0:
        return tag
    tar = rootfs_tarball()
    ctr = subprocess.run(
        ["buildah", *storage_args(), "from", "scratch"], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        subprocess.run(["buildah", *storage_args(), "add", ctr, str(tar), "/"], check=True, capture_output=True)
        if HOST_CA.exists():
            subprocess.run(
                ["buildah", *storage_args(), "copy", ctr, str(HOST_CA), str(HOST_CA)], check=True, capture_output=True
            )
        env = [a for k, v in TLS_ENV.items() for a in ("--env", f"{k}={v}")] if HOST_CA.exists() else []
        subprocess.run(
            ["buildah", *storage_args(), "config", *env, "--cmd", "/usr/bin/python3", ctr],
            check=True,
            capture_output=True,
        )
        subprocess.run(["buildah", *storage_args(), "commit", ctr, tag], check=True, capture_output=True)
    finally:
        subprocess.run(["buildah", *storage_args(), "rm", ctr], check=False, capture_output=True)
    return tag

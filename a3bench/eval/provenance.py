"""Where a number came from: versions, git SHA, device, command, time (docs/architecture.md#the-record)."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch


def git_sha() -> str | None:
    """The source checkout's commit (``+dirty`` with uncommitted changes); None when installed from a wheel."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def provenance(device: torch.device, world_size: int = 1) -> dict[str, Any]:
    from importlib import metadata

    from a3bench import __version__

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    dev = str(device)
    if device.type == "cuda" and torch.cuda.is_available():
        dev = f"{device} ({torch.cuda.get_device_name(device)})"
    return {
        "a3bench": __version__,
        "torch": torch.__version__,
        "pyautoattack": version("pyautoattack"),
        "python": platform.python_version(),
        "git_sha": git_sha(),
        "device": dev,
        "threads": torch.get_num_threads(),
        "processes": int(world_size),
        "platform": platform.platform(),
        "command": " ".join(sys.argv),
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }

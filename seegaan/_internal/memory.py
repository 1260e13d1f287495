"""How much memory a command may ask for, checked before any work."""

from __future__ import annotations

import os

from seegaan._internal.errors import SeegaanError


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``, else ``os.sysconf``); None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


#: bytes per pixel of one decoded step across what a sequence keeps of it (image, difference, p-values,
#: adjusted p-values, significance, significant difference, the null sums; an upper estimate)
STEP_BYTES_PER_PIXEL = 48


def check_steps_memory(
    count: int, image_size: int | None, option: str, *, available: int | None = None, what: str = "asks for"
) -> None:
    """Refuse, before any work, a number of steps (λ values, grid points, scan points) whose decoded images
    and their statistics cannot fit in half of the available memory; the message names ``option``."""
    side = int(image_size or 0) or 256
    need = int(count) * side * side * STEP_BYTES_PER_PIXEL
    available = available_memory() if available is None else available
    if available is not None and need > available / 2:
        raise SeegaanError(
            f"{option} {what} {int(count):,} steps of {side}x{side} images: about {need / 2**30:.3g} GiB, more "
            f"than half of the {available / 2**30:.3g} GiB of memory available; give fewer {_what(option)}"
        )


def _what(option: str) -> str:
    return option.lstrip("-") if option.startswith("--") else "steps or smaller images"

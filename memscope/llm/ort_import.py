"""Import onnxruntime with its telemetry off unless the user chose otherwise.

onnxruntime 1.32's Linux wheel queues a usage event per session (device id, OS, CPU, executable path)
in ~/.cache/Microsoft/DeveloperTools/.onnxruntime/ for https://mobile.events.data.microsoft.com;
memscope runs offline, so it sets ORT_DISABLE_TELEMETRY=1 before the first import unless it is set.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["import_onnxruntime"]


def import_onnxruntime() -> ModuleType:
    """The onnxruntime module (ImportError when it is not installed), imported with telemetry off."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime

    return onnxruntime

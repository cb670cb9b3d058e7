"""python -m core serve: one exported file behind the Open Inference Protocol (KServe's V2 REST API), served by
MLServer over HTTP; MLServer lives in its own environment (requirements-serve.txt), beside the dashboard's."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.serving.limits import Limits

MLSERVER_VERSION = "1.7.1"
SERVE_ENVIRONMENT = ".venv-serve"  # made by make serve (or make setup-serve) from requirements-serve.txt
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MISSING = (
    f"MLServer is not installed in this Python: the API runs in its own environment, {SERVE_ENVIRONMENT}; make serve "
    "builds it and starts the server (or: pip install -r requirements-serve.txt in an environment of its own)"
)


@dataclass(frozen=True)
class ServeOptions:
    """How the API serves one file."""

    host: str = "127.0.0.1"  # this machine only; 0.0.0.0 to serve the network
    port: int = 8080
    name: str = ""  # the model's name in the URLs; default: the file's name without .onnx (and .text)
    limits: Limits = field(default_factory=Limits)
    # MLServer's adaptive batching: requests arriving within max_batch_time seconds run as one batch of at most
    # max_batch_size rows (0: each request runs alone). Text requests only mix: id rows of other widths cannot stack.
    max_batch_size: int = 0
    max_batch_time: float = 0.0


def serving_python() -> Path | None:
    """The Python of the API's own environment when this one has no MLServer and is not it, else None."""
    import importlib.util
    import sys

    from core.paths import PROJECT_ROOT

    if importlib.util.find_spec("mlserver") is not None:
        return None
    environment = PROJECT_ROOT / SERVE_ENVIRONMENT
    # Two virtual environments' pythons resolve to the same interpreter: tell them apart by their prefix.
    if (environment / "bin" / "python").exists() and Path(sys.prefix).resolve() != environment.resolve():
        return environment / "bin" / "python"
    return None


def model_name(path: Path, name: str = "") -> str:
    """The name the model gets in the API's URLs, or ValueError when it cannot go in a URL."""
    name = name or path.name.removesuffix(".onnx").removesuffix(".text")
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"{name!r} cannot name the model in a URL: use letters, digits, '_', '.' and '-' (at most 64), e.g. --name"
            " imdb"
        )
    return name


def serve_commands(path: Path, name: str = "", port: int = 8080) -> str:
    """The shell lines that serve path over HTTP from the project's folder and classify one review through it."""
    import shlex

    from core.paths import PROJECT_ROOT

    name = model_name(path, name)
    absolute = path.resolve()
    shown = absolute.relative_to(PROJECT_ROOT) if absolute.is_relative_to(PROJECT_ROOT) else absolute
    review = {"name": "review", "shape": [1], "datatype": "BYTES", "data": ["A moving, beautifully acted film."]}
    request = {"inputs": [review]}
    return (
        f"make serve MODEL={shlex.quote(str(shown))} NAME={name} SERVE_PORT={port}   # add HOST=0.0.0.0 to share it\n"
        f"curl -s localhost:{port}/v2/models/{name}/infer -d {shlex.quote(json.dumps(request))}"
    )


def _one_line_validation_error(request, error):
    """FastAPI's 422 for the routes it validates, as one line in MLServer's error form (its loc starts at "body")."""
    from mlserver.rest.responses import Response

    from core.serving.front import validation_line

    errors = [{**problem, "loc": tuple(problem.get("loc", ()))[1:]} for problem in error.errors()]
    return Response(status_code=400, content={"error": validation_line(errors)})


def serve(path: Path, options: ServeOptions, started: Callable[[str], None] = print) -> None:
    """Serve the file until interrupted; started(url) is called once the model answers. ValueError when the file or an
    option cannot be used or MLServer is missing."""
    import asyncio
    import socket

    try:
        from fastapi.exceptions import RequestValidationError
        from mlserver import MLServer
        from mlserver.settings import ModelParameters, ModelSettings, Settings
    except ImportError:
        raise ValueError(MISSING) from None
    from core.scoring.predictor import Predictor
    from core.serving.front import InferFront, QuietDataPlane
    from core.serving.guard import RequestGuard
    from core.serving.transport import one_send_protocol

    name = model_name(path, options.name)
    Predictor.from_file(path)  # a file that cannot be served fails here, in one line, before any port is taken
    with socket.socket() as probe:  # and a port already taken is one line, not a server that exits half-started
        try:
            probe.bind((options.host, options.port))
        except OSError as error:
            raise ValueError(
                f"cannot listen on {options.host}:{options.port} ({error.strerror}): choose another --port"
            ) from None

    class HttpOnlyServer(MLServer):
        """MLServer's REST server alone: no gRPC or metrics port (each would be one more way in to bound), and the
        guard in front of the app."""

        def _create_servers(self):
            self._data_plane = QuietDataPlane(self._data_plane)
            super()._create_servers()
            self._grpc_server = None
            app = self._rest_server._app
            app.add_exception_handler(RequestValidationError, _one_line_validation_error)
            # uvicorn serves what _app is when the server starts: the guard, then the infer routes, then MLServer's app.
            self._rest_server._app = RequestGuard(InferFront(app, self._data_plane), limits=options.limits)
            make_config = self._rest_server._get_config

            def config():
                settings = make_config()
                settings.http = one_send_protocol()  # uvicorn's httptools protocol, a response in one send
                return settings

            self._rest_server._get_config = config

        def _add_signal_handlers(self):
            # uvicorn catches SIGINT and SIGTERM itself and shuts down gracefully; MLServer's handlers on the loop
            # would see the same Ctrl+C a second time, and uvicorn takes a second SIGINT for "force exit now".
            pass

        async def start(self, models_settings):
            rest = asyncio.ensure_future(self._rest_server.start())
            await asyncio.gather(*(self._model_registry.load(settings) for settings in models_settings))
            started(f"http://{options.host}:{options.port}/v2/models/{name}")
            await rest

    settings = Settings(
        host=options.host,
        http_port=options.port,
        # Inference in the server's own process: a worker pool pays off for models heavier than this one.
        parallel_workers=0,
        metrics_endpoint=None,
        gzip_enabled=False,  # responses are a few hundred bytes; compressing them costs more than it saves
        debug=False,
        load_models_at_startup=False,
    )
    model = ModelSettings(
        name=name,
        implementation="core.serving.runtime.ReviewModel",
        max_batch_size=options.max_batch_size,
        max_batch_time=options.max_batch_time,
        parameters=ModelParameters(uri=str(path), extra={"limits": asdict(options.limits)}),
    )

    async def main() -> None:
        await HttpOnlyServer(settings).start([model])

    import signal

    import uvloop  # the event loop `mlserver start` runs MLServer on

    # uvicorn stops the server on Ctrl+C and SIGTERM, then raises the signal again with the handler it found: ignored,
    # the command ends with the server; Python's default would end it in a KeyboardInterrupt instead.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        uvloop.run(main())
    finally:
        signal.signal(signal.SIGINT, previous)

"""The exported file behind an HTTP API (the Open Inference Protocol, served by MLServer in its own environment).

What the package offers is `__all__`, each name imported from its module on first use (core/lazy.py): naming them
imports no MLServer, which only `serve` (and the runtime it loads) needs.
"""

from core.lazy import public_names

__all__, __getattr__, __dir__ = public_names(
    __name__,
    {
        "limits": ("IDS_INPUT", "TEXT_INPUT", "Limits", "RequestError"),
        "server": (
            "MLSERVER_VERSION",
            "SERVE_ENVIRONMENT",
            "ServeOptions",
            "model_name",
            "serve",
            "serve_commands",
            "serving_python",
        ),
    },
)

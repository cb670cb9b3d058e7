"""The static web page: an exported model that classifies in the visitor's own browser, with no server of ours.

A folder that any static host serves as it is (`python -m http.server`, GitHub Pages, an object store): index.html
and its script (web/page), the text file (model.text.onnx, core.export.text_file) and onnxruntime-web's WebAssembly
build, pinned by web/package-lock.json and installed by `make web` (npm ci). The page fetches nothing from outside
its folder and, once loaded, classifies offline.

No TensorFlow here: it reads the exported file with onnx and copies files.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from core.atomic import write_bytes
from core.export.model_file import STEPS_SWITCH_NAME, has_steps_switch, read_model_file
from core.export.passes.pass_list import TEXT_FRONT
from core.export.text_file import TextFileError, checked_text_file
from core.paths import PROJECT_ROOT

__all__ = [
    "PAGE_FILES",
    "RUNTIME_FILES",
    "WebPageError",
    "WebPageResult",
    "check_web_folder",
    "runtime_folder",
    "write_web_page",
]

WEB_DIR = PROJECT_ROOT / "web"  # page/, package.json, the lock file and node_modules/
# From web/page: the page, its scripts, and onnxruntime-web's license (its package ships none as a file).
PAGE_FILES = ("index.html", "page.mjs", "score.mjs", "LICENSE.onnxruntime-web.txt")
# onnxruntime-web's WebAssembly build: the module, its loader and the binary (the page needs no other build).
RUNTIME_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
MODEL_NAME = "model.text.onnx"
BUNDLE_FILES = (*PAGE_FILES, *RUNTIME_FILES, MODEL_NAME)


class WebPageError(ValueError):
    """The page cannot be written: one line says why and what to do."""


@dataclass(frozen=True)
class WebPageResult:
    """What write_web_page wrote."""

    folder: Path
    files: tuple[str, ...]
    size_bytes: int  # the whole folder
    model_bytes: int  # the text file alone
    runtime_version: str
    seconds: float


def _pinned_version(web_dir: Path) -> str:
    return json.loads((web_dir / "package.json").read_text(encoding="utf-8"))["dependencies"]["onnxruntime-web"]


def runtime_folder(web_dir: Path | None = None) -> tuple[Path, str]:
    """(onnxruntime-web's dist folder, its version) as web/package.json pins it; WebPageError when it is missing or
    another version."""
    web_dir = web_dir or WEB_DIR
    package = web_dir / "node_modules" / "onnxruntime-web"
    pinned = _pinned_version(web_dir)
    missing = [name for name in RUNTIME_FILES if not (package / "dist" / name).is_file()]
    if missing or not (package / "package.json").is_file():
        raise WebPageError(
            f"the web page needs onnxruntime-web {pinned} in {web_dir / 'node_modules'}: run `make web` "
            "(it needs Node.js and npm)"
        )
    version = json.loads((package / "package.json").read_text(encoding="utf-8"))["version"]
    if version != pinned:
        raise WebPageError(f"{package} is version {version}, web/package.json pins {pinned}: run `make web`")
    return package / "dist", version


SWITCH_DOC = (
    f"{STEPS_SWITCH_NAME} (bool, required in this copy): true also computes step_probability [batch, sequence], the "
    "positive probability after each id; false leaves it an empty [batch, 0] tensor. Required because onnxruntime-web "
    "feeds only inputs without a default"
)


def steps_switch_required(proto) -> bool:
    """Make a file's steps switch a required input, in place (onnxruntime-web lists and feeds only the inputs that
    have no default, so the page could never ask for step_probability); False when the file has no switch."""
    if not has_steps_switch(proto):
        return False
    kept = [tensor for tensor in proto.graph.initializer if tensor.name != STEPS_SWITCH_NAME]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    for value in proto.graph.input:
        if value.name == STEPS_SWITCH_NAME:
            value.doc_string = SWITCH_DOC
    return True


def _text_file_bytes(model: Path) -> bytes:
    """The page's text file for model: model itself when it reads text, else its text file made and checked now (a
    stale model.text.onnx beside it is never the one shipped); its steps switch, if any, made a required input."""
    import onnx

    _, proto, metadata = read_model_file(model)
    if not TEXT_FRONT.present(proto):
        try:
            text_data, _, _ = checked_text_file(proto, metadata, str(model))
        except TextFileError as error:
            raise WebPageError(str(error)) from None
        proto = onnx.load_from_string(text_data)
    steps_switch_required(proto)
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def check_web_folder(out: Path) -> None:
    """out may be missing, empty, or a page written before (its files are replaced); anything else is kept safe."""
    if out.exists() and not out.is_dir():
        raise WebPageError(f"{out} is a file: give a folder for the page")
    if out.is_dir():
        foreign = sorted({path.name for path in out.iterdir()} - set(BUNDLE_FILES))
        if foreign:
            raise WebPageError(
                f"{out} holds other files ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}): "
                "give an empty or new folder for the page"
            )


def write_web_page(model: str | Path, out: str | Path, web_dir: Path | None = None) -> WebPageResult:
    """Write the static page for the exported file model (ids or text file) into the folder out, which must be new,
    empty or a page written before; nothing is written when something is missing. web_dir: the folder holding
    page/ and node_modules/ (default: the project's web/)."""
    started = time.perf_counter()
    web_dir = web_dir or WEB_DIR
    out = Path(out)
    check_web_folder(out)
    dist, version = runtime_folder(web_dir)
    text_data = _text_file_bytes(Path(model))
    out.mkdir(parents=True, exist_ok=True)
    # Everything goes to a folder beside out first, then each file is moved in: a failed copy leaves out as it was.
    with tempfile.TemporaryDirectory(dir=out, prefix=".web-page-") as staging:
        staged = Path(staging)
        for name in PAGE_FILES:
            shutil.copyfile(web_dir / "page" / name, staged / name)
        for name in RUNTIME_FILES:
            shutil.copyfile(dist / name, staged / name)
        write_bytes(staged / MODEL_NAME, text_data)
        for name in BUNDLE_FILES:
            (staged / name).replace(out / name)
    size = sum((out / name).stat().st_size for name in BUNDLE_FILES)
    return WebPageResult(
        folder=out, files=BUNDLE_FILES, size_bytes=size, model_bytes=len(text_data), runtime_version=version,
        seconds=time.perf_counter() - started,
    )

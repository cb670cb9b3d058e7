"""The repository's own rules: Dockerfile checks, import boundaries, module docstrings, no unsafe calls, pins."""

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_FILES = sorted((ROOT / "core").rglob("*.py")) + sorted((ROOT / "dashboard").rglob("*.py"))


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_installs_requirements_ships_model_and_runs_safely():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert "pip install --no-cache-dir -r requirements.txt" in text
    assert re.search(r"^COPY models/ models/", text, re.M), "the default model must be in the image"
    assert re.search(r"^COPY core/ core/", text, re.M) and re.search(r"^COPY dashboard/ dashboard/", text, re.M)
    assert re.search(r"^ENV .*PYTHONPATH=/app", text, re.M | re.S)
    assert re.search(r"^HEALTHCHECK .*\n?.*_stcore/health", text, re.M)
    assert re.search(r"^EXPOSE 8501", text, re.M)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0"), "the image must run as a non-root user"
    assert "dashboard/app.py" in text.splitlines()[-1]


def test_the_image_can_start_the_http_api_instead():
    """docker build --target api: the API's own requirements (no TensorFlow), the shipped model, all interfaces."""
    text = (ROOT / "Dockerfile").read_text()
    stage = text[text.index("\nFROM base AS api") : text.index("\nFROM base AS dashboard")]
    assert "pip install --no-cache-dir -r requirements-serve.txt" in stage and "requirements.txt" not in stage
    assert re.search(r"^COPY models/ models/", stage, re.M) and re.search(r"^USER 10001", stage, re.M)
    assert "/v2/health/ready" in stage and re.search(r"^EXPOSE 8080", stage, re.M)
    command = [line for line in stage.splitlines() if line.startswith("CMD ")][-1]
    assert '"core", "serve"' in command and '"--host", "0.0.0.0"' in command and '"--port", "8080"' in command


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for name in (".venv", ".venv-serve", ".git", "runs", ".cache", ".streamlit/secrets.toml"):
        assert name in ignored


def test_the_image_listens_on_all_interfaces_and_starts_read_only():
    text = (ROOT / "Dockerfile").read_text()
    command = text.splitlines()[-1]
    assert command.startswith("CMD [") and '"--server.address=0.0.0.0"' in command
    assert re.search(r"^ENV (?:.*\\\n)*\s*IMDB_READ_ONLY=1\b", text, re.M), "the image must start read-only"
    # A password is given when the container starts (-e or a mounted secrets.toml), never baked into the image.
    instructions = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not any("ADMIN_PASSWORD" in line or "admin_password" in line for line in instructions)


def test_a_local_secrets_file_stays_out_of_git():
    assert ".streamlit/secrets.toml" in (ROOT / ".gitignore").read_text().split()


def test_core_never_imports_streamlit():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "core").rglob("*.py") if "streamlit" in _imports(p)]
    assert not offenders


def test_the_import_contracts_hold():
    """pyproject.toml's import-linter contracts: core's packages in the data flow's order, no import cycle, no
    Streamlit in core, no TensorFlow imported by the scoring package's modules."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 kept, 0 broken" in result.stdout


def test_no_test_module_imports_another():
    """Shared test inputs live in support modules (tests/hand_built_file.py, tests/small_inputs.py,
    tests/browser_support.py, tests/float_checks.py), so that a test file can be read, run and moved on its own."""
    offenders = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {name}" for name in names if name.split(".")[-1].startswith("test_")]
    assert not offenders


CORE_PACKAGES = ("data", "evaluation", "export", "model", "runs", "scoring", "serving", "training")
# The users of core: the dashboard, the command line's commands and the benchmarks.
CORE_USERS = [*sorted((ROOT / "dashboard").rglob("*.py")), ROOT / "core" / "cli.py", ROOT / "core" / "commands.py"]
CORE_USERS += sorted((ROOT / "bench").glob("*.py"))
# import core.X.Y where a benchmark patches the module itself, for one measurement.
PATCHED_MODULES = {("bench/fit_timing.py", "core.training.trainer")}


def test_the_dashboard_commands_and_benchmarks_import_core_packages_from_their_roots():
    """`from core.scoring import Predictor`, never `from core.scoring.predictor import Predictor`: a package's
    __init__ names what it offers (__all__), and what lies below it can move without touching its users."""
    import importlib

    offenders = []
    for path in CORE_USERS:
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                if parts[0] != "core" or len(parts) < 2 or parts[1] not in CORE_PACKAGES:
                    continue
                if len(parts) > 2:
                    offenders.append(f"{where}:{node.lineno} from {node.module}")
                    continue
                offered = importlib.import_module(node.module).__all__
                offenders += [f"{where}:{node.lineno} {alias.name}" for alias in node.names if alias.name not in offered]
            elif isinstance(node, ast.Import):
                offenders += [
                    f"{where}:{node.lineno} import {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("core.") and alias.name.count(".") > 1
                    and (where, alias.name) not in PATCHED_MODULES
                ]
    assert not offenders


def test_every_public_name_of_a_package_is_there_and_no_module_hides_one():
    """Each name in a package's __all__ resolves, and none is also the name of a module of the package (importing the
    module would replace the package's attribute with it)."""
    import importlib
    import pkgutil

    for name in CORE_PACKAGES:
        package = importlib.import_module(f"core.{name}")
        modules = {info.name for info in pkgutil.iter_modules(package.__path__)}
        assert package.__all__ and not set(package.__all__) & modules, name
        assert all(getattr(package, public) is not None for public in package.__all__)
        assert set(package.__all__) <= set(dir(package))
        with pytest.raises(AttributeError, match="has no attribute"):
            package.no_such_name  # noqa: B018


def test_a_package_root_imports_nothing_until_a_name_is_used():
    script = (
        "import json, sys\n"
        "import core.scoring, core.training, core.export, core.data\n"
        "before = sorted(m for m in sys.modules if m.split('.')[0] in ('onnxruntime', 'tensorflow', 'keras'))\n"
        "from core.scoring import Predictor\n"
        "after = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print(json.dumps([before, 'core.scoring.predictor' in sys.modules, after]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    before, predictor_loaded, after = json.loads(result.stdout.strip().splitlines()[-1])
    assert before == [] and predictor_loaded and after == []


def test_json_lines_are_written_in_one_place():
    """Every JSON line of scores (predict's output, a .jsonl file) comes from core.scoring.table_io.json_line."""
    written = re.compile(r"json\.dumps\([^\n]*\)\s*\+\s*\"\\n\"")
    offenders = [
        str(path.relative_to(ROOT)) for path in PRODUCT_FILES if written.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == ["core/scoring/table_io.py"]


def test_core_inference_does_not_import_tensorflow_statically():
    assert not {"tensorflow", "keras", "tf2onnx"} & _imports(ROOT / "core" / "scoring" / "predictor.py")


def test_ray_is_imported_by_ray_scoring_alone_and_only_when_asked_for():
    """Ray is an optional dependency: the dashboard and the Predictor never import it, and core/scoring/ray.py only
    inside a function (its module body imports no ray)."""
    importers = [str(p.relative_to(ROOT)) for p in PRODUCT_FILES if "ray" in _imports(p)]
    assert importers == ["core/scoring/ray.py"], importers
    tree = ast.parse((ROOT / "core" / "scoring" / "ray.py").read_text(encoding="utf-8"))
    top_level = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top_level.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            top_level.add(node.module.split(".")[0])
    assert "ray" not in top_level


def test_ray_is_pinned_for_tests_and_named_in_the_install_hint():
    from core.scoring.ray import AIOHTTP_VERSION, RAY_VERSION

    text = (ROOT / "requirements-dev.txt").read_text()
    assert f"ray[data]=={RAY_VERSION}" in text and f"aiohttp=={AIOHTTP_VERSION}" in text
    assert "ray" not in (ROOT / "requirements.txt").read_text(), "ray is optional for users"


def test_every_module_opens_with_a_docstring():
    missing = [
        str(p.relative_to(ROOT))
        for p in PRODUCT_FILES + sorted((ROOT / "tests").glob("*.py")) + sorted((ROOT / "bench").glob("*.py"))
        if p.stat().st_size and ast.get_docstring(ast.parse(p.read_text(encoding="utf-8"))) is None
    ]
    assert not missing


def test_no_pickle_eval_or_exec_in_product_code():
    found = []
    for path in PRODUCT_FILES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec"):
                found.append(f"{path.name}:{node.lineno} {node.func.id}")
            if isinstance(node, ast.keyword) and node.arg == "allow_pickle" and getattr(node.value, "value", False):
                found.append(f"{path.name}:{node.value.lineno} allow_pickle=True")
        if "pickle" in _imports(path):
            found.append(f"{path.name} imports pickle")
    assert not found


def test_no_unsafe_html_in_dashboard():
    for path in (ROOT / "dashboard").rglob("*.py"):
        assert "unsafe_allow_html=True" not in path.read_text(encoding="utf-8"), path.name


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][\w.]*", line), f"not pinned in {name}: {line}"
            package, version = line.split("==")
            pins[package] = version
    return pins


def test_requirements_are_pinned():
    """Both environments pinned, and the API's scores with the very versions the dashboard and the CLI use."""
    main, serve = _pins("requirements.txt"), _pins("requirements-serve.txt")
    shared = {"onnxruntime", "onnx", "numpy", "pyarrow"}
    assert {package: main[package] for package in shared} == {package: serve[package] for package in shared}
    assert "tensorflow-cpu" not in serve and "streamlit" not in serve
    from core.serving import MLSERVER_VERSION

    assert serve["mlserver"] == MLSERVER_VERSION  # the version the runtime and the README are written against


def test_streamlit_config_is_hardened():
    text = (ROOT / ".streamlit" / "config.toml").read_text()
    assert re.search(r"^headless = true", text, re.M)
    assert re.search(r"^gatherUsageStats = false", text, re.M)
    assert re.search(r"^maxUploadSize = 50$", text, re.M)
    assert "enableXsrfProtection = false" not in text


def test_streamlit_listens_on_this_machine_only_by_default():
    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert server["address"] == "127.0.0.1"


def _make_run_command(*arguments: str) -> str:
    # make -n prints the commands without running them; the last one starts Streamlit. Only PATH is passed on, so a
    # HOST or PORT in the caller's environment does not change what is checked.
    result = subprocess.run(
        ["make", "-n", "run", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_make_run_listens_on_loopback_unless_host_is_given():
    assert _make_run_command().endswith("streamlit run dashboard/app.py --server.port 8501 --server.address 127.0.0.1")
    assert _make_run_command("HOST=0.0.0.0").endswith("--server.address 0.0.0.0")


def test_bandit_reports_no_medium_or_high_finding():
    bandit = shutil.which("bandit") or str(Path(sys.executable).parent / "bandit")
    result = subprocess.run(
        [bandit, "-q", "-ll", "-c", str(ROOT / "pyproject.toml"), "-r", str(ROOT / "core"), str(ROOT / "dashboard")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr

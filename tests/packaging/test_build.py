"""`sam build` of the real template: it builds, each function with its layers fits, the
dependencies layer holds what Lambda needs and nothing it must not, the authorizer and
health probe carry the core layer and load without onnxruntime or numpy, and the built
code imports on Python 3.12 with only its layers and the runtime's boto3."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeroute.tools.localinvoke import load_function
from edgeroute.tools.localinvoke.template import load_template
from tests.packaging.conftest import REPO, SAM, TEMPLATE, SamBuild, python312
from tests.packaging.sizes import built_layers as _built_layers
from tests.packaging.sizes import function_size
from tests.packaging.sizes import tree_size as _size
from tests.packaging.test_template import FUNCTIONS

# Lambda's hard limit is 250 MB unzipped; the edge models and their runtime keep at least
# 30 MB of it spare. Room is counted for the one layer not built here: the Lambda Web
# Adapter (~6 MB) on StreamFunction. Measured 2026-11-29: Router, Stream and Batch 189.5 MB,
# Authorizer and HealthProbe 128.1 MB on the full layer (230.2 and 168.8 MB before the
# layer's trims); on the core layer see docs/deploy.md.
MAX_UNZIPPED_BYTES = 220 * 1000 * 1000
# The authorizer and probe on the core layer: what is left once the edge runtime is out,
# with the .pyc Lambda loads (layers/bytecode.mk: 38.2 MB without them, 48.9 MB with).
MAX_CORE_UNZIPPED_BYTES = 55 * 1000 * 1000
# Which built layers each function runs with (the Web Adapter layer is not built here).
LAYERS = {
    "RouterFunction": ["DependenciesLayer", "EdgeModelsLayer"],
    "StreamFunction": ["DependenciesLayer", "EdgeModelsLayer"],
    "BatchFunction": ["DependenciesLayer", "EdgeModelsLayer"],
    "ResponsesWorkerFunction": ["DependenciesLayer", "EdgeModelsLayer"],
    "AuthorizerFunction": ["CoreLayer"],
    "HealthProbeFunction": ["CoreLayer"],
}
LEAN = ("AuthorizerFunction", "HealthProbeFunction")
# What the lean functions must never load: the edge runtime and the app framework.
HEAVY_MODULES = ("onnxruntime", "numpy", "sentencepiece", "py3langid", "fastapi", "mangum")
EXTERNAL_LAYER_ALLOWANCE = 6_500_000
# What Lambda's python3.12 runtime ships (boto3 and its dependencies).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
ELF_MACHINE = {"x86_64": 0x3E, "arm64": 0xB7}


def test_sam_build_succeeds(sam_build: SamBuild) -> None:
    assert "Build Succeeded" in sam_build.log
    for name in FUNCTIONS:
        assert (sam_build.build_dir / name / "edgeroute" / "__init__.py").is_file(), name


# Python 3.12's byte code magic; unchecked-hash flags (PEP 552: hash-based, source never
# checked), as layers/bytecode.mk compiles for Lambda's read-only /var/task and /opt.
PY312_MAGIC = (3531).to_bytes(2, "little") + b"\r\n"
UNCHECKED_HASH = 0b01


def not_byte_compiled(folder: Path) -> list[str]:
    """Sources under ``folder`` without the .pyc Lambda's python3.12 would load as is."""
    missing = []
    for source in folder.rglob("*.py"):
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
        header = pyc.read_bytes()[:8] if pyc.is_file() else b""
        if header[:4] != PY312_MAGIC or int.from_bytes(header[4:8], "little") != UNCHECKED_HASH:
            missing.append(str(source.relative_to(folder)))
    return missing


def test_functions_ship_without_developer_tools(sam_build: SamBuild) -> None:
    for name in FUNCTIONS:
        code = sam_build.build_dir / name
        assert (code / "edgeroute" / "handlers").is_dir(), name
        assert not (code / "edgeroute" / "tools").exists(), name
        assert not [p for p in code.rglob("*.pyc") if "cpython-312" not in p.name], name
        assert not not_byte_compiled(code), name
        assert not list(code.glob("*.egg-info")), name
        print(name, f"{_size(code) / 1e3:.0f} kB of code")  # shown with pytest -s


def test_functions_carry_the_default_registry_and_policy(sam_build: SamBuild) -> None:
    """What serves until the stack's bucket holds config/models.yaml and routing.yaml."""
    for name in FUNCTIONS:
        bundled = sam_build.build_dir / name / "edgeroute" / "config" / "bundled"
        for file in ("models.yaml", "routing.yaml"):
            assert (bundled / file).read_bytes() == (REPO / "infra" / file).read_bytes(), name


def test_each_function_with_its_layers_leaves_30_mb_of_lambdas_limit(sam_build: SamBuild) -> None:
    sizes = {}
    for name in FUNCTIONS:
        layers = _built_layers(name, sam_build.build_dir)
        assert all(layer.is_dir() for layer in layers), layers
        external = len(load_function(TEMPLATE, name).layers) - len(layers)
        total = function_size(name, sam_build.build_dir)
        sizes[name] = total
        assert total + external * EXTERNAL_LAYER_ALLOWANCE < MAX_UNZIPPED_BYTES, (name, total)
        if name in LEAN:
            assert total < MAX_CORE_UNZIPPED_BYTES, (name, total)
    print({k: f"{v / 1e6:.1f} MB" for k, v in sizes.items()})  # shown with pytest -s


def test_each_function_has_its_layers_and_the_lean_ones_only_the_core_layer(
    sam_build: SamBuild,
) -> None:
    for name in FUNCTIONS:
        built = [layer.name for layer in _built_layers(name, sam_build.build_dir)]
        assert built == LAYERS[name], (name, built)
    core = sam_build.build_dir / "CoreLayer" / "python"
    top = {p.name.lower() for p in core.iterdir()}
    for heavy in (*HEAVY_MODULES, "phonenumbers", "starlette", "uvicorn"):
        assert not any(n == heavy or n.startswith(heavy + "-") for n in top), heavy
    for needed in ("pydantic_core", "jwt", "cryptography", "aiohttp", "aws_lambda_powertools"):
        assert needed in top, needed


def test_dependencies_layer_leaves_out_what_lambda_has_or_never_needs(sam_build: SamBuild) -> None:
    site = sam_build.build_dir / "DependenciesLayer" / "python"
    top = {p.name.lower() for p in site.iterdir()}
    for unwanted in ("boto3", "botocore", "huggingface_hub", "hf_xet", "fsspec", "uvloop"):
        assert not any(n == unwanted or n.startswith(unwanted + "-") for n in top), unwanted
    assert not not_byte_compiled(site)
    assert not [p for p in site.rglob("tests") if p.is_dir()]
    assert (site / "sentencepiece").is_dir() and (site / "onnxruntime").is_dir()
    # The Makefile's trims (each explained there) still find what they remove.
    trimmed = (
        "onnxruntime/capi/libonnxruntime.so*",
        "numpy/random",
        "numpy/_core/include",
        "yaml/_yaml.*.so",
        "google/protobuf",
        "**/*.pyx",
    )
    assert not [p for pattern in trimmed for p in site.glob(pattern)]


def test_native_code_is_built_for_the_template_architecture(sam_build: SamBuild) -> None:
    # The template's default; the layer's CPU comes from EDGEROUTE_ARCH (x86_64 unset).
    arch = load_template(TEMPLATE)["Parameters"]["Architecture"]["Default"]
    assert arch == os.environ.get("EDGEROUTE_ARCH", "x86_64")
    site = sam_build.build_dir / "DependenciesLayer" / "python"
    core = sam_build.build_dir / "CoreLayer" / "python"
    libs = list(site.glob("pydantic_core/*.so")) + list(site.glob("onnxruntime/capi/*.so"))
    libs += list(core.glob("pydantic_core/*.so")) + list(core.glob("cryptography/hazmat/*/*.so"))
    assert libs
    for lib in libs:
        assert elf_machine(lib) == ELF_MACHINE[arch], lib


def elf_machine(lib: Path) -> int:
    """The CPU an ELF shared object is built for (``e_machine``: 0x3E x86-64, 0xB7 aarch64)."""
    header = lib.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{lib} is not an ELF file"
    return int.from_bytes(header[18:20], "little")


def test_edge_models_layer_holds_the_model_files(sam_build: SamBuild) -> None:
    layer = sam_build.build_dir / "EdgeModelsLayer" / "edge_models"
    wanted = ("model.onnx", "spm.model", "heads.npz", "labels.json", "card.yaml")
    for model in (REPO / "edge_models").iterdir():
        present = [f for f in wanted if (model / f).is_file()]
        for file in present:
            assert (layer / model.name / file).read_bytes() == (model / file).read_bytes()
    shipped = {p.name for p in layer.rglob("*") if p.is_file()}
    assert shipped <= set(wanted), shipped


@pytest.fixture(scope="module")
def runtime_boto3(sam_build: SamBuild, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """boto3 and its dependencies alone, as the Lambda runtime provides them (taken from
    SAM CLI's Python 3.12 venv)."""
    site = next((SAM.parent.parent / "lib").glob("python3.12/site-packages"))
    out = tmp_path_factory.mktemp("runtime")
    for name in RUNTIME_PACKAGES:
        source = site / name
        if not source.exists():
            source = site / f"{name}.py"
        (out / source.name).symlink_to(source)
    return out


def _run_with_layers(
    name: str, build: Path, runtime_boto3: Path, tmp_path: Path, argv: list[str]
) -> subprocess.CompletedProcess[str]:
    """Python 3.12 with no site-packages, only the built function, its layers and the
    runtime's boto3 on the path, as Lambda runs it."""
    python = python312()
    assert python, "Python 3.12 (Lambda's runtime version) is needed: `pyenv install 3.12`"
    paths = [build / name, *(layer / "python" for layer in _built_layers(name, build))]
    registry = tmp_path / "models.yaml"
    registry.write_text("models:\n  - {name: m, endpoint: 'http://127.0.0.1:9/v1', tier: small}\n")
    env = {
        "PATH": os.environ["PATH"],
        # -S: no site-packages at all, so nothing from this machine's installs can help.
        "PYTHONPATH": os.pathsep.join(str(p) for p in [*paths, runtime_boto3]),
        "EDGEROUTE_REGISTRY": str(registry),  # on Lambda: s3://<bucket>/config/...
        "EDGEROUTE_POLICY": str(REPO / "infra" / "routing.yaml"),
        "EDGEROUTE_STORE": "sqlite",
        "EDGEROUTE_SQLITE_PATH": str(tmp_path / "store.db"),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    return subprocess.run(
        [python, "-S", *argv], env=env, capture_output=True, text=True, timeout=180
    )


@pytest.mark.parametrize("name", LEAN)
def test_lean_function_loads_without_the_edge_runtime(
    name: str, sam_build: SamBuild, runtime_boto3: Path, tmp_path: Path
) -> None:
    module, _, attr = load_function(TEMPLATE, name).handler.rpartition(".")
    code = (
        f"import sys, {module} as m; assert callable(m.{attr})\n"
        f"loaded = sorted(set({HEAVY_MODULES!r}) & {{k.partition('.')[0] for k in sys.modules}})\n"
        "assert not loaded, loaded\n"
        "try:\n    import numpy\nexcept ImportError:\n    pass\n"
        "else:\n    sys.exit('numpy is on the lean layer')\n"
    )
    done = _run_with_layers(name, sam_build.build_dir, runtime_boto3, tmp_path, ["-c", code])
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("name", ["RouterFunction", "BatchFunction"])
def test_built_function_imports_with_only_its_layers(
    name: str, sam_build: SamBuild, runtime_boto3: Path, tmp_path: Path
) -> None:
    module, _, attr = load_function(TEMPLATE, name).handler.rpartition(".")
    code = f"import {module} as m; assert callable(m.{attr}); import onnxruntime, sentencepiece"
    done = _run_with_layers(name, sam_build.build_dir, runtime_boto3, tmp_path, ["-c", code])
    assert done.returncode == 0, done.stderr[-3000:]


def _is_type_checking(test: ast.expr) -> bool:
    return isinstance(test, ast.Name | ast.Attribute) and ast.unparse(test).endswith(
        "TYPE_CHECKING"
    )


def third_party_imports(package: Path) -> set[str]:
    """Each import statement of a module outside the standard library in the package's
    Lambda code (tools/ stays out of the builds), at module level or inside functions;
    imports for type checkers only are left out."""
    statements = set()
    for source in package.rglob("*.py"):
        if package / "tools" in source.parents:
            continue
        tree = ast.parse(source.read_text(), str(source))
        type_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and _is_type_checking(node.test)
            for statement in node.body
            for inner in ast.walk(statement)
        }
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            roots = {module.partition(".")[0] for module in modules}
            if roots - set(sys.stdlib_module_names) - {package.name}:
                statements.add(ast.unparse(node))
    return statements


# Runs every import statement, then the edge models on the real runtime (onnxruntime,
# sentencepiece, numpy's BLAS, py3langid): a trim that breaks either fails here.
_IMPORT_AND_CLASSIFY = """
import sys
failed = []
for statement in sys.argv[2:]:
    try:
        exec(statement, {})
    except Exception as exc:
        failed.append(f"{statement}: {exc!r}")
if failed:
    sys.exit("\\n".join(failed))
from pathlib import Path
from edgeroute.edge import classifier, models, moderation
models.configure(Path(sys.argv[1]), 1)
classifier.warm(language=True)
assert 0.0 <= moderation.offensive_scores(["a kind word"])[0] <= 1.0
"""


def test_layer_serves_every_import_edgeroute_makes_and_runs_the_edge_models(
    sam_build: SamBuild, runtime_boto3: Path, tmp_path: Path
) -> None:
    statements = sorted(third_party_imports(REPO / "functions" / "edgeroute"))
    joined = "\n".join(statements)
    for expected in ("import onnxruntime", "import jwt", "aws_lambda_powertools.utilities"):
        assert expected in joined, statements  # the scan sees lazy imports too
    models = sam_build.build_dir / "EdgeModelsLayer" / "edge_models"
    argv = ["-c", _IMPORT_AND_CLASSIFY, str(models), *statements]
    done = _run_with_layers("RouterFunction", sam_build.build_dir, runtime_boto3, tmp_path, argv)
    assert done.returncode == 0, done.stderr[-3000:]

"""`sam build` of the real template: it builds, each function with its layers fits, the
dependencies layer holds what Lambda needs and nothing it must not, and the built
code imports on Python 3.12 with only its layers and the runtime's boto3."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from edgeroute.tools.localinvoke import load_function
from edgeroute.tools.localinvoke.template import load_template
from tests.packaging.conftest import REPO, SAM, TEMPLATE, SamBuild, python312
from tests.packaging.test_template import FUNCTIONS

# Lambda's hard limit is 250 MB unzipped; the edge models and their runtime keep at least
# 30 MB of it spare. Room is counted for the one layer not built here: the Lambda Web
# Adapter (~6 MB) on StreamFunction.
MAX_UNZIPPED_BYTES = 220 * 1000 * 1000
EXTERNAL_LAYER_ALLOWANCE = 6_500_000
# What Lambda's python3.12 runtime ships (boto3 and its dependencies).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
ELF_MACHINE = {"x86_64": 0x3E, "arm64": 0xB7}


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _built_layers(name: str, build: Path) -> list[Path]:
    layers = load_function(TEMPLATE, name).layers
    return [
        build / str(layer) for layer in layers if isinstance(layer, str) and layer.isidentifier()
    ]


def test_sam_build_succeeds(sam_build: SamBuild) -> None:
    assert "Build Succeeded" in sam_build.log
    for name in FUNCTIONS:
        assert (sam_build.build_dir / name / "edgeroute" / "__init__.py").is_file(), name


def test_functions_ship_without_developer_tools(sam_build: SamBuild) -> None:
    for name in FUNCTIONS:
        code = sam_build.build_dir / name
        assert (code / "edgeroute" / "handlers").is_dir(), name
        assert not (code / "edgeroute" / "tools").exists(), name
        assert not list(code.rglob("__pycache__")), name
        assert not list(code.glob("*.egg-info")), name
        print(name, f"{_size(code) / 1e3:.0f} kB of code")  # shown with pytest -s


def test_each_function_with_its_layers_leaves_30_mb_of_lambdas_limit(sam_build: SamBuild) -> None:
    sizes = {}
    for name in FUNCTIONS:
        layers = _built_layers(name, sam_build.build_dir)
        assert all(layer.is_dir() for layer in layers), layers
        external = len(load_function(TEMPLATE, name).layers) - len(layers)
        total = _size(sam_build.build_dir / name) + sum(_size(layer) for layer in layers)
        sizes[name] = total
        assert total + external * EXTERNAL_LAYER_ALLOWANCE < MAX_UNZIPPED_BYTES, (name, total)
    print({k: f"{v / 1e6:.1f} MB" for k, v in sizes.items()})  # shown with pytest -s


def test_dependencies_layer_leaves_out_what_lambda_has_or_never_needs(sam_build: SamBuild) -> None:
    site = sam_build.build_dir / "DependenciesLayer" / "python"
    top = {p.name.lower() for p in site.iterdir()}
    for unwanted in ("boto3", "botocore", "huggingface_hub", "hf_xet", "fsspec", "uvloop"):
        assert not any(n == unwanted or n.startswith(unwanted + "-") for n in top), unwanted
    assert not list(site.rglob("__pycache__")) and not list(site.rglob("*.pyc"))
    assert not [p for p in site.rglob("tests") if p.is_dir()]
    assert (site / "sentencepiece").is_dir() and (site / "onnxruntime").is_dir()


def test_native_code_is_built_for_the_template_architecture(sam_build: SamBuild) -> None:
    # The template's default; the layer's CPU comes from EDGEROUTE_ARCH (x86_64 unset).
    arch = load_template(TEMPLATE)["Parameters"]["Architecture"]["Default"]
    assert arch == os.environ.get("EDGEROUTE_ARCH", "x86_64")
    site = sam_build.build_dir / "DependenciesLayer" / "python"
    libs = list(site.glob("pydantic_core/*.so")) + list(site.glob("onnxruntime/capi/*.so"))
    assert libs
    for lib in libs:
        header = lib.read_bytes()[:20]
        assert header[:4] == b"\x7fELF"
        assert int.from_bytes(header[18:20], "little") == ELF_MACHINE[arch], lib


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


@pytest.mark.parametrize("name", ["RouterFunction", "AuthorizerFunction", "BatchFunction"])
def test_built_function_imports_with_only_its_layers(
    name: str, sam_build: SamBuild, runtime_boto3: Path, tmp_path: Path
) -> None:
    python = python312()
    assert python, "Python 3.12 (Lambda's runtime version) is needed: `pyenv install 3.12`"
    build = sam_build.build_dir
    paths = [build / name, *(layer / "python" for layer in _built_layers(name, build))]
    module, _, attr = load_function(TEMPLATE, name).handler.rpartition(".")
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
    code = f"import {module} as m; assert callable(m.{attr}); import onnxruntime, sentencepiece"
    done = subprocess.run(
        [python, "-S", "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]

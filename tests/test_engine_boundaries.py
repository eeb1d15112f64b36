"""Layering: dl_core runs without the UI stack (notebooks, scripts, benchmarks); ui never reaches into
the labs; a lab never imports another lab; no import circle."""
import os
import re
import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT


def test_dl_core_imports_neither_streamlit_nor_plotly():
    """At run time too: importing every module of dl_core loads neither (the contracts below read
    the source; this also sees an import made by name)."""
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                     for p in (ROOT / "dl_core").rglob("*.py"))
    code = ("import sys, importlib\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('streamlit', 'plotly')]\n"
            "assert not bad, bad\nprint(len(" + repr(modules) + "))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 40


def lint_imports(root, config):
    """lint-imports' exit status and report for the packages under `root` against `config`'s contracts."""
    out = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                          f"sys.exit(lint_imports(config_filename={str(config)!r}, no_cache=True))"],
                         cwd=root, env=os.environ | {"PYTHONPATH": str(root)}, capture_output=True, text=True,
                         timeout=120)
    return out.returncode, out.stdout + out.stderr


def test_the_layering_contracts_hold():
    """pyproject.toml's import-linter contracts: labs over ui over dl_core; a lab page never imports
    another; dl_core without Streamlit or plotly; data below the engine; the engine knowing no lab;
    attribution importing no lab."""
    status, report = lint_imports(ROOT, ROOT / "pyproject.toml")
    assert status == 0, report
    assert report.count(" KEPT") >= 6, report


def test_the_contracts_catch_each_kind_of_violation(tmp_path):
    bad = {"labs/a.py": "from labs import b", "labs/b.py": "", "ui/w.py": "import labs.a",
           "dl_core/m.py": "def f():\n    import streamlit as st", "dl_core/cnn.py": "",
           "dl_core/engine/job.py": "from dl_core import cnn", "dl_core/data/d.py": "from dl_core.engine import job",
           "dl_core/explain.py": "import dl_core.cnn"}
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    named = {m for c in contracts for m in c.get("forbidden_modules", []) + c.get("source_modules", [])}
    for module in sorted(named - {"streamlit", "plotly"}):  # a contract names only modules that exist
        path = module.replace(".", "/")
        if not any(name.startswith(path + "/") for name in bad):  # (a package there already)
            bad.setdefault(path + ".py", "")
    for name, code in bad.items():
        for parent in (tmp_path / name).parents:
            if parent == tmp_path:
                break
            parent.mkdir(exist_ok=True)
            (parent / "__init__.py").touch()
        (tmp_path / name).write_text(code)
    status, report = lint_imports(tmp_path, ROOT / "pyproject.toml")
    assert status != 0
    broken = {line.removesuffix(" BROKEN") for line in report.splitlines() if line.endswith(" BROKEN")}
    assert broken == {"Pages over the UI over the engine", "A lab page never imports another",
                      "dl_core runs from a notebook: no Streamlit, no plotly", "The data below the engine",
                      "The engine knows no lab", "Attribution serves any lab's model: it imports no lab"}, report


def dl_core_modules_loaded_by(module: str) -> set[str]:
    """The dl_core modules that importing `module` loads, directly or not, in a fresh interpreter."""
    code = f"import sys, {module}\nprint(' '.join(m for m in sys.modules if m.startswith('dl_core.')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_export_does_not_load_the_playgrounds_inputs():
    """The exporter reads the spec only: a lab's input transform comes with it (spec.InputCode)."""
    assert "dl_core.data.data2d" not in dl_core_modules_loaded_by("dl_core.export")


def test_dl_core_has_no_import_circle():
    """Modules that import each other, at any depth, in any function (the shared tool's check)."""
    tool = ROOT.parent / "shared" / "tools" / "import_circles.py"
    if not tool.exists():
        pytest.skip("the shared import-circle tool is not beside this checkout")
    out = subprocess.run([sys.executable, str(tool), "dl_core"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and " 0 circles" in out.stdout, out.stdout


def test_device_picks_cpu_here_and_explains_fallback():
    from dl_core.device import pick_device

    auto = pick_device("auto")
    assert auto.kind in ("cuda", "mps", "cpu") and auto.reason
    import torch

    if not torch.cuda.is_available():
        forced = pick_device("cuda")
        assert forced.kind == "cpu" and "not available" in forced.reason


def test_pages_and_ui_draw_charts_as_plain_vega_lite_specs():
    """st.line_chart, st.bar_chart and st.altair_chart validate an Altair chart on every call
    (50–300 ms holding the GIL): in a live view that starves the training thread. Charts go
    through ui/charts.py and st.vega_lite_chart instead."""
    slow = re.compile(r"\.(line|bar|area|scatter|altair)_chart\(|^\s*(import|from) altair", re.M)
    files = [ROOT / "app.py", ROOT / "router.py", *ROOT.glob("labs/*.py"), *ROOT.glob("ui/*.py")]
    offenders = [f"{p.relative_to(ROOT)}:{m.group(0).strip()}" for p in files
                 for m in slow.finditer(p.read_text())]
    assert not offenders, offenders


def test_the_servers_imports_are_frozen_out_of_the_garbage_collector():
    """ui.boot.warm() imports every module once per web process, then freezes what the imports
    made: the collector's full passes no longer walk them (with 30 learners each pass stopped a
    web process for 0.3-0.6 s). Frozen objects far outnumber those it still tracks."""
    code = ("import gc\nfrom ui import boot\nboot.warm()\n"
            "print(gc.get_freeze_count(), len(gc.get_objects()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    frozen, tracked = map(int, out.stdout.split())
    assert frozen > 100_000 and tracked < frozen / 10, (frozen, tracked)


def test_ruff_finds_nothing():
    """pyproject.toml's lint rules (pyflakes, pycodestyle, sorted imports) over the whole checkout."""
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr

"""Layering: dl_core runs without the UI stack (notebooks, scripts, benchmarks); ui never reaches into
the labs; a lab never imports another lab."""
import ast
import re
import subprocess
import sys

from conftest import ROOT


def test_dl_core_imports_neither_streamlit_nor_plotly():
    modules = sorted(p.stem for p in (ROOT / "dl_core").glob("*.py") if p.stem != "__init__")
    code = ("import sys, importlib\n"
            f"for m in {modules!r}: importlib.import_module('dl_core.' + m)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('streamlit', 'plotly')]\n"
            "assert not bad, bad\nprint(len(" + repr(modules) + "))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 8


# folder -> top-level packages its files must not import
FORBIDDEN = {"labs": {"labs"}, "ui": {"labs"}, "dl_core": {"ui", "labs", "streamlit", "plotly"}}


def imported_packages(path, package):
    """Top-level packages a file imports: import statements anywhere in it (relative ones resolve to its
    own package) and importlib.import_module / __import__ with a literal name."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            out.add(package if node.level else node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)):
            out.add(str(node.args[0].value).split(".")[0])
    return out


def boundary_violations(root):
    return [f"{path.relative_to(root)} imports {bad}"
            for folder, forbidden in FORBIDDEN.items() for path in sorted((root / folder).rglob("*.py"))
            for bad in sorted(imported_packages(path, folder) & forbidden)]


def test_labs_ui_and_dl_core_import_only_downwards():
    assert sum(1 for folder in FORBIDDEN for _ in (ROOT / folder).rglob("*.py")) >= 30
    assert not boundary_violations(ROOT)


def test_the_boundary_check_catches_each_kind_of_violation(tmp_path):
    bad = {"labs/a.py": "from labs import b", "labs/b.py": "from . import a", "ui/w.py": "import labs.a",
           "dl_core/m.py": "def f():\n    import streamlit as st", "dl_core/n.py": "from ui.state import JOB",
           "dl_core/o.py": "import importlib\nimportlib.import_module('plotly.express')", "ui/ok.py": "from . import w"}
    for name, code in bad.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(code)
    assert sorted(boundary_violations(tmp_path)) == ["dl_core/m.py imports streamlit", "dl_core/n.py imports ui",
                                             "dl_core/o.py imports plotly", "labs/a.py imports labs",
                                             "labs/b.py imports labs", "ui/w.py imports labs"]


def dl_core_modules_loaded_by(module: str) -> set[str]:
    """The dl_core modules that importing `module` loads, directly or not, in a fresh interpreter."""
    code = f"import sys, {module}\nprint(' '.join(m for m in sys.modules if m.startswith('dl_core.')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_explain_does_not_load_the_cnn_lab():
    """Attribution serves any lab's model; it shares `predict` with the CNN Lab through dl_core.inference."""
    assert "dl_core.cnn" not in dl_core_modules_loaded_by("dl_core.explain")


def test_export_does_not_load_the_playgrounds_inputs():
    """The exporter reads the spec only: a lab's input transform comes with it (spec.InputCode)."""
    assert "dl_core.data2d" not in dl_core_modules_loaded_by("dl_core.export")


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

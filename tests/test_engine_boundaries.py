"""dl_core must run without the UI stack: notebooks, scripts, benchmarks."""
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
    offenders = [f"{p.relative_to(ROOT)}:{m.group(0).strip()}" for p in [ROOT / "app.py", *ROOT.glob("pages/*.py"),
                                                                         *ROOT.glob("ui/*.py")]
                 for m in slow.finditer(p.read_text())]
    assert not offenders, offenders

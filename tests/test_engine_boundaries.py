"""dl_core must run without the UI stack: notebooks, scripts, benchmarks."""
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

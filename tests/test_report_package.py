"""The mlilt.report package: every module reads result files only (no torch, no model code), and it runs alone."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from test_report import result, write

from mlilt import report as rp

HEAVY = {"torch", "transformers", "timm", "accelerate", "open_clip"}
TORCH_FREE = {"mlilt.sheets"}  # thumbnail drawing (PIL) for the gallery


def test_no_module_of_the_package_imports_torch_or_model_code():
    package = Path(rp.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert len(modules) >= 8  # split by concern, not one file
    for path in modules:
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = "mlilt.report" if node.level == 1 else "mlilt" if node.level == 2 else ""
                imported.add(".".join(p for p in (base, node.module) if p))
        bad = {m for m in imported if m.split(".")[0] in HEAVY
               or (m.startswith("mlilt") and not m.startswith("mlilt.report") and m not in TORCH_FREE)}
        assert not bad, f"{path.name} imports {bad}"
        assert len(path.read_text().splitlines()) < 600, path.name


def test_python_m_mlilt_report_writes_a_report_without_torch(tmp_path):
    path = write(tmp_path, "a.json", result())
    code = ("import runpy, sys\n"
            f"sys.argv = ['mlilt.report', {str(path)!r}, '--out', {str(tmp_path / 'r')!r}, '--langs', 'DE']\n"
            "try:\n    runpy.run_module('mlilt.report', run_name='__main__')\nexcept SystemExit as e:\n"
            "    assert e.code == 0, e.code\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    assert "languages selected (--langs): de" in (tmp_path / "r.md").read_text()

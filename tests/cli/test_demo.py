"""`tierbot demo` as a new user runs it, and the wheel that `pip install .` builds.

The demo builds the example's virtualenv from its requirements (scikit-learn, matplotlib) through pip,
so this is the slowest test; pip's cache makes later runs quick.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from bot.deploy.local import stop_environment
from bot.deploy.stable_url import environment_dir
from bot.settings import Settings


def demo(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERBOT_")}
    env |= {"TIERBOT_DATA_DIR": str(data_dir), "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "bot", "demo", *args], env=env, capture_output=True, text=True, timeout=900
    )


def test_demo_compares_then_reuses_both_sides(tmp_path: Path):
    first = demo(tmp_path / "data")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "feature-x: n_estimators 50 → 5" in first.stdout
    assert "FAIL metric test.log_loss in metrics.json got worse" in first.stdout
    assert "predictions.csv" in first.stdout and "confusion_matrix.png" in first.stdout
    report = Path(first.stdout.split("HTML report: ")[1].split()[0])
    assert "<html" in report.read_text()
    assert not Path(first.stdout.split("Example repository: ")[1].split()[0]).exists()  # removed at the end

    second = demo(tmp_path / "data", "--keep")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Baseline reused: run" in second.stdout
    assert "Branch reused: run" in second.stdout  # nothing ran: the same trees ran before
    assert "branch: reused run" in second.stdout
    assert "FAIL metric test.log_loss" in second.stdout
    kept = Path(second.stdout.split("The example repository is kept: ")[1].split()[0])
    assert (kept / ".git").is_dir()
    # --keep keeps the model serving too; this test stops it, as `tierbot demo` without --keep does
    stop_environment(environment_dir(Settings(data_dir=tmp_path / "data"), str(kept), "production"))
    shutil.rmtree(kept)


def test_wheel_ships_templates_examples_hooks_and_migrations(tmp_path: Path):
    root = Path(__file__).resolve().parents[2]  # the repository: tests/cli/ is two levels down
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(root)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("tierbot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "bot/templates/comparison.md.j2",
        "bot/examples/iris/train.py",
        "bot/examples/iris/tierbot.yaml",
        "bot/hooks/pre-push",
        "bot/store/migrations/env.py",
        "bot/store/migrations/script.py.mako",
    ):
        assert needed in names, needed
    assert not [n for n in names if "/outputs/" in n or "__pycache__" in n]

"""`tierbot gc` as a user runs it, on a data dir holding a real (aged) run."""

from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from bot.pipeline import Pipeline
from bot.store import Run
from bot.store.models import utcnow

from ..core.test_pipeline import compare


def test_gc_dry_run_lists_and_keeps_then_gc_removes(settings, simple_repo, tierbot):
    pipeline = Pipeline(settings)
    submission, _ = compare(pipeline, simple_repo, "better")
    head = submission.head.id
    with pipeline.db.session() as s:
        when = utcnow() - timedelta(days=45)
        s.execute(update(Run).where(Run.id == head).values(finished_at=when, created_at=when))
        s.commit()
    log = Path(pipeline.run(head).log_path)

    dry = tierbot("gc", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "Would remove" in dry.stdout and f"run {head}'s log" in dry.stdout
    assert "Dry run: nothing removed" in dry.stdout and log.exists()

    done = tierbot("gc", "--older-than", "30d")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Removed" in done.stdout and "Freed" in done.stdout and not log.exists()
    assert "Nothing to remove." in tierbot("gc").stdout


def test_gc_bad_options_are_usage_errors(tierbot):
    bad_size = tierbot("gc", "--max-size", "lots")
    assert bad_size.returncode == 2 and "'lots' is not a size" in bad_size.stderr
    bad_age = tierbot("gc", "--older-than", "a while", "--dry-run")
    assert bad_age.returncode == 2 and "'a while' is not a duration" in bad_age.stderr


def test_gc_keeps_the_environment_a_deployed_model_is_served_from(settings, tierbot):
    """A model server runs in the experiment's environment (`bot.deploy`): that one stays however old."""
    import os

    from bot.store.models import Deployment

    pipeline = Pipeline(settings)
    old = (utcnow() - timedelta(days=90)).timestamp()
    for key in ("served", "unused"):
        env = settings.envs_dir / key
        (env / "bin").mkdir(parents=True)
        os.utime(env, (old, old))
    with pipeline.db.session() as s:
        python = str(settings.envs_dir / "served" / "bin" / "python")
        deployed = {"repository": "acme/models", "environment": "production", "sha": "a" * 40}
        s.add(Deployment(**deployed, target="local", instance={"python": python}))
    done = tierbot("gc", "--older-than", "30d")
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in settings.envs_dir.iterdir()) == ["served"]

"""Compiled templates are kept beside the templates (`bot.render.templates._CompiledBeside`): a second
process loads them instead of compiling; a changed template is compiled afresh; a damaged or unwritable
cache never changes what is rendered."""

from pathlib import Path

from jinja2 import Environment, FileSystemLoader

from bot.render.templates import _CompiledBeside, environment


def render(templates: Path, cache: Path, **values) -> str:
    """As a new process would: a new environment on the same cache directory."""
    env = Environment(loader=FileSystemLoader(templates), bytecode_cache=_CompiledBeside(str(cache)))
    return env.get_template("t.j2").render(**values)


def test_compiled_once_then_loaded_and_recompiled_when_changed(tmp_path):
    templates, cache = tmp_path / "templates", tmp_path / "cache"
    templates.mkdir()
    cache.mkdir()
    (templates / "t.j2").write_text("hello {{ name }}")
    assert render(templates, cache, name="a") == "hello a"
    (entry,) = cache.iterdir()
    compiled = entry.read_bytes()
    assert render(templates, cache, name="b") == "hello b" and entry.read_bytes() == compiled
    (templates / "t.j2").write_text("bye {{ name }}")
    assert render(templates, cache, name="c") == "bye c" and entry.read_bytes() != compiled


def test_a_damaged_or_missing_cache_renders_the_same(tmp_path):
    templates, cache = tmp_path / "templates", tmp_path / "cache"
    templates.mkdir()
    cache.mkdir()
    (templates / "t.j2").write_text("{{ 1 + 1 }}")
    render(templates, cache)
    (entry,) = cache.iterdir()
    entry.write_bytes(entry.read_bytes()[:40])  # cut short, as a crash mid-write elsewhere would
    assert render(templates, cache) == "2"
    assert render(templates, tmp_path / "no such directory") == "2"  # cannot write: compiles each time


def test_the_report_templates_are_kept_beside_the_templates_per_flavour():
    env = environment("term")
    assert Path(env.bytecode_cache.directory).parts[-2:] == ("__pycache__", "term")

import pytest

from tracesafe._util import Registry


def test_lookup_names_the_kind_and_the_known_names():
    reg: Registry[int] = Registry("widget", reserved=("auto",))
    reg.add("a", 1)
    reg.register("b")(2)
    assert reg.get("b") == 2 and reg.names() == ["a", "b"] and "a" in reg and len(reg) == 2
    with pytest.raises(ValueError, match=r"unknown widget 'c'; known: auto, a, b"):
        reg.get("c")


def test_a_second_plugin_under_one_name_or_a_reserved_name_fails():
    reg: Registry[object] = Registry("widget", reserved=("auto",))
    reg.add("a", object())
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", object())
    with pytest.raises(ValueError, match="reserved"):
        reg.add("auto", object())


def test_builtin_modules_load_on_first_lookup_only(tmp_path, monkeypatch):
    import sys

    (tmp_path / "plugin_mod_for_registry_test.py").write_text(
        "from tests_registry_shared import REG\nREG.add('late', 42)\n")
    (tmp_path / "tests_registry_shared.py").write_text(
        "from tracesafe._util import Registry\nREG = Registry('thing', modules=('plugin_mod_for_registry_test',))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import tests_registry_shared

    assert "plugin_mod_for_registry_test" not in sys.modules
    assert tests_registry_shared.REG.get("late") == 42  # the first look-up imported the plugin module
    assert "plugin_mod_for_registry_test" in sys.modules


def test_built_ins_list_in_declared_order_whichever_was_imported_first(tmp_path, monkeypatch):
    import importlib

    (tmp_path / "reg_order_shared.py").write_text(
        "from tracesafe._util import Registry\nREG = Registry('thing', modules=('reg_order_a', 'reg_order_b'))\n")
    for m in ("a", "b"):
        (tmp_path / f"reg_order_{m}.py").write_text(f"from reg_order_shared import REG\nREG.register('{m}')({m!r})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("reg_order_b")  # a program that imports the second plugin module first
    from reg_order_shared import REG

    REG.add("third-party", "c")
    assert REG.names() == ["a", "b", "third-party"]

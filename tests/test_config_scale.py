"""Subscriptions split over included files, and the limits that keep loading bounded."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from notifier import config as config_module
from notifier.config import ConfigError, load_config

MAIN = """\
channels:
  me:
    type: console
subscriptions:
  - name: main-one
    url: https://blog.example.org/
    notify: [me]
"""


def sub(name: str, url: str = "https://blog.example.org/") -> str:
    return f"  - name: {name}\n    url: {url}\n    notify: [me]\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env or {})
    return str(caught.value)


def test_include_a_folder_appends_its_yaml_files_sorted(tmp_path: Path) -> None:
    write(tmp_path / "subs.d" / "b.yml", "subscriptions:\n" + sub("b-one"))
    write(tmp_path / "subs.d" / "a.yaml", "subscriptions:\n" + sub("a-one") + sub("a-two"))
    write(tmp_path / "subs.d" / "notes.txt", "not yaml: [")
    main = write(tmp_path / "notifier.yaml", MAIN + "include: subs.d\n")
    config = load_config(main, {})
    assert [s.name for s in config.subscriptions] == ["main-one", "a-one", "a-two", "b-one"]


def test_include_globs_and_main_file_without_subscriptions(tmp_path: Path) -> None:
    write(tmp_path / "one" / "x.yaml", "subscriptions:\n" + sub("x"))
    write(tmp_path / "two" / "y.yaml", "subscriptions:\n" + sub("y"))
    text = MAIN.split("subscriptions:")[0] + "include: [one/*.yaml, 'two/*.yaml']\n"
    config = load_config(write(tmp_path / "notifier.yaml", text), {})
    assert [s.name for s in config.subscriptions] == ["x", "y"]


def test_env_substitution_applies_to_included_files(tmp_path: Path) -> None:
    write(tmp_path / "inc.yaml", "subscriptions:\n" + sub("env", "${BLOG:-https://x.org/}"))
    main = write(tmp_path / "notifier.yaml", MAIN + "include: inc.yaml\n")
    config = load_config(main, {"BLOG": "https://from-env.example.org/"})
    assert config.subscriptions[1].url == "https://from-env.example.org/"
    write(tmp_path / "inc.yaml", "subscriptions:\n" + sub("env", "${BLOG}"))
    message = problems(main)
    assert f"{tmp_path / 'inc.yaml'}:3: subscriptions[0].url: environment variable BLOG" \
        in message, message


def test_error_in_included_file_names_that_file_and_line(tmp_path: Path) -> None:
    inc = write(tmp_path / "subs" / "b.yaml", "subscriptions:\n" + sub("ok")
                + sub("bad", "ftp://blog.example.org/") + "    wacth: posts\n")
    main = write(tmp_path / "notifier.yaml", MAIN + "include: subs/\n")
    message = problems(main)
    assert f"{inc}:6: subscriptions[1].url: 'ftp://blog.example.org/…' is not an http" \
        in message, message
    assert f"{inc}:8: subscriptions[1].wacth: unknown key; did you mean 'watch'?" \
        in message, message
    write(inc, "subscriptions:\n  - name: x\n    url: [\n")
    assert problems(main).startswith(f"{inc}:")


def test_included_file_holds_only_subscriptions(tmp_path: Path) -> None:
    inc = write(tmp_path / "inc.yaml", "channels: {}\nsubscriptions:\n" + sub("x"))
    main = write(tmp_path / "notifier.yaml", MAIN + "include: inc.yaml\n")
    assert f"{inc}:1: channels: an included file may only hold 'subscriptions'" \
        in problems(main)
    write(inc, "- just a list\n")
    assert f"{inc}:1: an included file must be a mapping with one key, 'subscriptions'" \
        in problems(main)


def test_duplicate_names_across_files_show_both_locations(tmp_path: Path) -> None:
    inc = write(tmp_path / "inc.yaml", "subscriptions:\n" + sub("other") + sub("main-one"))
    main = write(tmp_path / "notifier.yaml", MAIN + "include: inc.yaml\n")
    message = problems(main)
    assert (f"{inc}:5: subscriptions[1].name: subscription name 'main-one' is already used "
            f"by subscriptions[0] in {main}:5; names must be unique") in message, message


def test_include_pattern_matching_nothing_is_an_error(tmp_path: Path) -> None:
    main = write(tmp_path / "notifier.yaml", MAIN + "include: [missing/*.yaml]\n")
    assert f"{main}:8: include[0]: 'missing/*.yaml' matches no file" in problems(main)
    write(main, MAIN + "include: {a: 1}\n")
    assert f"{main}:8: include: expected a file pattern or a list of them" in problems(main)


def test_alias_bomb_is_refused_with_file_and_line(tmp_path: Path) -> None:
    levels = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, 9):
        refs = ",".join([f"*a{n - 1}"] * 9)
        levels.append(f"a{n}: &a{n} [{refs}]")
    main = write(tmp_path / "notifier.yaml", "\n".join(levels) + "\n" + MAIN)
    message = problems(main)
    assert message.startswith(f"{main}:")
    assert "aliases (*name) expand to more than 10000 values" in message, message


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    text = MAIN.replace("notify: [me]", "notify: &to [me]") + (
        "  - name: second\n    url: https://blog.example.org/\n    notify: *to\n")
    assert len(load_config(write(tmp_path / "notifier.yaml", text), {}).subscriptions) == 2


def test_file_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_module, "MAX_CONFIG_BYTES", 100)
    main = write(tmp_path / "notifier.yaml", MAIN)
    assert "the file is larger than 100 bytes" in problems(main)


def test_subscription_count_limit_counts_all_files(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_module, "MAX_SUBSCRIPTIONS", 2)
    write(tmp_path / "inc.yaml", "subscriptions:\n" + sub("x") + sub("y"))
    main = write(tmp_path / "notifier.yaml", MAIN + "include: inc.yaml\n")
    assert f"{main}: 3 subscriptions in all; at most 2 are allowed" in problems(main)


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    main = write(tmp_path / "notifier.yaml", "loop: &l [1, *l]\n" + MAIN)
    assert f"{main}:1: an alias refers to a collection that contains it" in problems(main)


def test_merge_keys_and_typed_scalars_still_load(tmp_path: Path) -> None:
    text = MAIN + ("  - <<: {watch: posts, backfill: 3}\n    name: merged\n"
                   "    url: https://blog.example.org/\n    notify: [me]\n    backfill: 5\n")
    merged = load_config(write(tmp_path / "notifier.yaml", text), {}).subscriptions[1]
    assert (merged.watch, merged.backfill) == ("posts", 5)


@pytest.fixture(params=["libyaml-events", "node-tree"])
def builder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each YAML builder in turn: the one on libyaml's events, and the node-tree one it
    hands anything unusual to (and which builds everything where libyaml is missing)."""
    if request.param == "node-tree":
        monkeypatch.setattr(config_module, "_EVENT_PARSER", None)
    return str(request.param)


@pytest.mark.usefixtures("builder")
def test_merge_keys_first_mapping_wins_and_a_scalar_is_refused(tmp_path: Path) -> None:
    """Both builders apply YAML's merge rule: own keys, then the first merged mapping."""
    text = MAIN + ("  - <<: [{watch: posts, backfill: 3}, {watch: threads, backfill: 4,"
                   " interval: 1h}]\n    name: merged\n"
                   "    url: https://blog.example.org/\n    notify: [me]\n    backfill: 5\n")
    merged = load_config(write(tmp_path / "notifier.yaml", text), {}).subscriptions[1]
    assert (merged.watch, merged.backfill, merged.interval) == ("posts", 5, 3600.0)
    bad = write(tmp_path / "bad.yaml", MAIN + "  - <<: 7\n    name: x\n")
    lines = len(MAIN.splitlines())
    assert f"{bad}:{lines + 1}: subscriptions[1]: '<<' must merge a mapping" in problems(bad)


@pytest.mark.usefixtures("builder")
def test_typed_scalars_load_and_an_unsafe_tag_is_refused_at_its_line(tmp_path: Path) -> None:
    text = MAIN + ("  - name: typed\n    url: https://blog.example.org/\n    notify: [me]\n"
                   "    backfill: 0x10\n    exclude_self: off\n    interval: !!int 90\n")
    typed = load_config(write(tmp_path / "notifier.yaml", text), {}).subscriptions[1]
    assert (typed.backfill, typed.exclude_self, typed.interval) == (16, False, 90.0)
    bad = write(tmp_path / "bad.yaml", MAIN + "  - name: x\n    url: !!python/name:os.system "
                                              "https://blog.example.org/\n")
    lines = len(MAIN.splitlines())
    found = problems(bad)
    assert f"{bad}:{lines + 2}: not valid YAML: " in found and "python/name" in found, found

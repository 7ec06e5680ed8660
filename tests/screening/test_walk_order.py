"""A photo reached under two names (a symlinked folder) is listed under the name the sorted walk meets
first, whatever order the file system lists the folders in."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from preflight.screening import find_images

EXPECTED = ["ds/a/x/q.jpg", "ds/m_link/r.jpg", "ds/nested/p.jpg"]


def _build(root: Path, samples: Path, links_first: bool) -> None:
    """``ds/nested`` and ``ds/nested_link`` (-> nested), ``ds/a/x`` and ``ds/b`` (-> a/x), ``ds/z`` and
    ``ds/m_link`` (-> z); the links made before or after their targets."""
    ds = root / "ds"
    ds.mkdir()
    links = [("nested_link", "nested"), ("b", "a/x"), ("m_link", "z")]
    folders = [("nested", "p.jpg"), ("a/x", "q.jpg"), ("z", "r.jpg")]
    if links_first:
        for name, target in links:
            (ds / name).symlink_to(target, target_is_directory=True)
    for folder, photo in folders:
        (ds / folder).mkdir(parents=True)
        shutil.copy(samples / "biden.jpg", ds / folder / photo)
    if not links_first:
        for name, target in links:
            (ds / name).symlink_to(target, target_is_directory=True)


class _Listing:
    """What ``os.scandir`` returns, with the entries in a chosen order."""

    def __init__(self, entries: list[os.DirEntry[str]]) -> None:
        self._entries = iter(entries)

    def __iter__(self) -> Iterator[os.DirEntry[str]]:
        return self

    def __next__(self) -> os.DirEntry[str]:
        return next(self._entries)

    def __enter__(self) -> _Listing:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None

    def close(self) -> None:
        return None


def _scandir_in(order: Callable[[list[os.DirEntry[str]]], list[os.DirEntry[str]]]) -> Callable[..., Any]:
    real = os.scandir

    def scandir(path: Any = ".") -> _Listing:
        with real(path) as entries:
            return _Listing(order(list(entries)))

    return scandir


ORDERS: dict[str, Callable[[list[os.DirEntry[str]]], list[os.DirEntry[str]]] | None] = {
    "as on disk": None,
    "sorted": lambda entries: sorted(entries, key=lambda e: e.name),
    "reversed": lambda entries: sorted(entries, key=lambda e: e.name, reverse=True),
}


@pytest.mark.parametrize("links_first", [False, True], ids=["targets first", "links first"])
@pytest.mark.parametrize("order", list(ORDERS))
def test_the_first_name_in_sorted_order_wins(tmp_path: Path, samples: Path, monkeypatch: pytest.MonkeyPatch,
                                             order: str, links_first: bool) -> None:
    _build(tmp_path, samples, links_first)
    monkeypatch.chdir(tmp_path)
    chosen = ORDERS[order]
    if chosen is not None:
        monkeypatch.setattr(os, "scandir", _scandir_in(chosen))
    assert find_images("ds") == EXPECTED
    assert find_images("ds/") == EXPECTED
    assert find_images("ds/**") == EXPECTED  # a glob's folders are walked the same way

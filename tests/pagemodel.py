"""A model of the agent page, fed the frames the socket sends, as static/console.js and htmx apply them.

Each top-level element of a frame is settled against the page by id: an older version is dropped,
a removal (data-delete) takes the element away and is remembered, an element that is not on the
page yet goes into its container (data-into) by data-order, and a fragment for an element that
does not exist yet waits until it does. `html()` of the live part is compared with a snapshot.
"""

from __future__ import annotations

from lxml import html as lxml_html
from lxml.etree import _Element

PARKED_MAX = 200


def _version(el: _Element | None) -> int | None:
    if el is None:
        return None
    raw = el.get("data-v")
    return int(raw) if raw is not None else None


def _older(incoming: _Element, current: _Element) -> bool:
    a, b = _version(incoming), _version(current)
    if a is None or b is None or incoming.get("data-key", "") != current.get("data-key", ""):
        return False
    return a < b


def _fragments(frame: str) -> list[_Element]:
    return list(lxml_html.fragments_fromstring(frame)) if frame.strip() else []


class PageModel:
    def __init__(self, page: str) -> None:
        self.root = lxml_html.fromstring(page)
        self.removed: dict[str, tuple[int, str]] = {}  # id -> (version, key) of what was taken away
        self.parked: dict[str, _Element] = {}

    def find(self, element_id: str) -> _Element | None:
        found = self.root.xpath("//*[@id=$id]", id=element_id)
        return found[0] if found else None

    def apply(self, frame: str) -> None:
        for el in _fragments(frame):
            if not isinstance(el, _Element) or not el.get("id"):
                continue
            self._settle(el)

    def _freshest(self, el: _Element) -> None:
        for part in list(el.xpath(".//*[@id and @data-v]")):
            known = self.find(part.get("id")) if self.find(part.get("id")) is not None else self.parked.get(
                part.get("id"))
            if known is not None and _older(part, known):
                part.getparent().replace(part, _copy(known))
            self.parked.pop(part.get("id"), None)

    def _remember(self, el: _Element) -> None:
        version = _version(el)
        if version is not None:
            self.removed[el.get("id")] = (version, el.get("data-key", ""))

    def _settle(self, el: _Element) -> None:
        element_id = el.get("id")
        current = self.find(element_id)
        gone = self.removed.get(element_id)
        version = _version(el)
        key = el.get("data-key", "")
        if el.get("data-delete") is not None:
            if current is not None and _older(el, current):
                return
            if not (gone is not None and gone[1] == key and version is not None and gone[0] > version):
                self._remember(el)
            if current is not None:
                for part in current.xpath(".//*[@id and @data-v]"):
                    self._remember(part)
                current.getparent().remove(current)
            return
        if gone is not None and version is not None and gone[1] == key and version <= gone[0]:
            return
        self._freshest(el)
        _strip_swap(el)
        if current is not None:
            if _older(el, current):
                return
            el.tail = current.tail
            current.getparent().replace(current, el)
            return
        into = el.get("data-into")
        container = self.find(into.removeprefix("#")) if into else None
        if container is None:
            waiting = self.parked.get(element_id)
            if waiting is None or not _older(el, waiting):
                self.parked[element_id] = el
            while len(self.parked) > PARKED_MAX:
                self.parked.pop(next(iter(self.parked)))
            return
        order = el.get("data-order", "")
        for index, child in enumerate(container):
            if child.get("data-order") is not None and child.get("data-order") > order and child.get("id"):
                container.insert(index, el)
                return
        container.append(el)

    def live(self) -> _Element:
        found = self.find("live")
        assert found is not None
        return found

    def ids(self, css_class: str, under: str = "screen-pop") -> list[str]:
        container = self.find(under)
        if container is None:
            return []
        return [el.get("id") for el in container if css_class in (el.get("class") or "").split()]


def _copy(el: _Element) -> _Element:
    return lxml_html.fragment_fromstring(lxml_html.tostring(el, encoding="unicode"))


def _strip_swap(el: _Element) -> None:
    el.attrib.pop("hx-swap-oob", None)


def normalized(el: _Element, *, versions: bool = False) -> str:
    """The element as compared: whitespace folded, swap instructions and (unless asked) versions left out."""
    copy = _copy(el)
    for node in copy.iter():
        if not isinstance(node.tag, str):
            continue
        node.attrib.pop("hx-swap-oob", None)
        if not versions:
            node.attrib.pop("data-v", None)
        if node.get("id") == "ws-cursor":
            node.set("content", "")
        node.text = " ".join(node.text.split()) if node.text else None
        node.tail = " ".join(node.tail.split()) if node.tail else None
    return lxml_html.tostring(copy, encoding="unicode")


def versions_of(el: _Element) -> dict[str, int]:
    return {node.get("id"): int(node.get("data-v")) for node in el.xpath(".//*[@id and @data-v]")}

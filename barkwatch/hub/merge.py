"""One bark heard by several microphones is one bark: events of different nodes that start within a window
(about a second) are grouped, and the group is placed in the room of the node that heard it loudest.

Pure functions on plain values, so the rule is tested without a broker or a database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Heard:
    """One node's event, what placing it needs."""

    id: str
    node: str
    room: str
    start: float  # Unix seconds
    duration_s: float
    level_dbfs: float | None  # the peak window's level; None: unknown (digital silence, an old record)
    peak_score: float | None
    clip: bool = False


@dataclass(frozen=True)
class Bark:
    """A bark of the house: every node's hearing of it, loudest first; it is placed where the first was."""

    heard: tuple[Heard, ...]

    @property
    def placed(self) -> Heard:
        return self.heard[0]

    @property
    def room(self) -> str:
        return self.placed.room

    @property
    def id(self) -> str:
        return self.placed.id

    @property
    def start(self) -> float:
        return min(h.start for h in self.heard)

    @property
    def duration_s(self) -> float:
        return max(h.start + h.duration_s for h in self.heard) - self.start

    @property
    def also(self) -> list[str]:
        """The other rooms that heard it, loudest first, each once."""
        return list(dict.fromkeys(h.room for h in self.heard[1:] if h.room != self.room))


def loudness(h: Heard) -> tuple[float, float, str]:
    """The order of placing, loudest first: the level, then the peak score, then the node's name (so that
    equal hearings are placed the same way every time)."""
    level = h.level_dbfs if h.level_dbfs is not None and math.isfinite(h.level_dbfs) else -math.inf
    score = h.peak_score if h.peak_score is not None else -math.inf
    return (-level, -score, h.node)


def merge(events: Iterable[Heard], window_s: float = 1.0) -> list[Bark]:
    """The barks of ``events`` (any order), oldest first. An event joins the earliest group that began at most
    ``window_s`` before it and has no event of its node yet (one node's two events are two barks); else it
    begins a group. A window of 0 groups only events that start at the same instant."""
    groups: list[list[Heard]] = []
    open_from = 0  # groups before this index began more than window_s before the event at hand
    for h in sorted(events, key=lambda e: (e.start, e.node, e.id)):
        while open_from < len(groups) and h.start - groups[open_from][0].start > window_s:
            open_from += 1
        for group in groups[open_from:]:
            if all(other.node != h.node for other in group):
                group.append(h)
                break
        else:
            groups.append([h])
    return [Bark(tuple(sorted(group, key=loudness))) for group in groups]

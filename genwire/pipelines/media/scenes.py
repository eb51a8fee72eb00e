"""Scene planning: a prompt and a duration become timed, captioned scenes.

The plan is deterministic: the same prompt, duration and count always give the
same scenes. Each sentence of the prompt narrates a scene; when the prompt has
fewer sentences than scenes, the remaining scenes narrate variations on its topic.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

SECONDS_PER_SCENE = 3.0  #: the default pace: one scene per this many seconds
MIN_SCENE_S = 1.0  #: the shortest scene a plan may hold
MAX_SCENES = 20
CAPTION_CHARS = 48
TOPIC_WORDS = 8

_SENTENCE_BREAK = re.compile(r"(?<=[.!?;])\s+")
_CLAUSE_BREAK = re.compile(r"[,:()]|\s[-–—]\s")
_DETERMINERS = frozenset({"a", "an", "the", "this", "that", "these", "those", "some", "my", "our"})
_VARIATIONS = (
    "A closer look at {topic}.",
    "Every detail of {topic} comes into view.",
    "Now imagine {topic} in motion.",
    "Seen from far away: {topic}.",
    "The light changes over {topic}.",
    "A quiet moment with {topic}.",
)
_CLOSING = "And that was {topic}."


@dataclass(frozen=True)
class Scene:
    index: int
    caption: str  #: a short title, drawn on the frames
    narration: str  #: what the voice says, and the subtitle cue
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def default_scene_count(duration_s: float) -> int:
    return min(MAX_SCENES, max(1, round(duration_s / SECONDS_PER_SCENE)))


def plan_scenes(prompt: str, *, count: int, duration_s: float) -> list[Scene]:
    """Split `duration_s` into `count` equal scenes narrated from `prompt`."""
    if count < 1:
        raise ValueError("a plan needs at least one scene")
    narrations = _narrations(" ".join(prompt.split()), count)
    slot = duration_s / count
    return [
        Scene(
            index=index,
            caption=shorten(narration.rstrip(" .!?;:"), CAPTION_CHARS),
            narration=narration,
            start_s=index * slot,
            end_s=duration_s if index == count - 1 else (index + 1) * slot,
        )
        for index, narration in enumerate(narrations)
    ]


def shorten(text: str, limit: int) -> str:
    """`text` cut at a word boundary to at most `limit` characters, marked with '…'."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-.!?") + "…"


def _narrations(prompt: str, count: int) -> list[str]:
    sentences = [_as_sentence(part) for part in _SENTENCE_BREAK.split(prompt) if part.strip()]
    if len(sentences) >= count:
        bounds = [index * len(sentences) // count for index in range(count + 1)]
        return [" ".join(sentences[start:stop]) for start, stop in itertools.pairwise(bounds)]
    topic = _topic(sentences[0])
    extra = count - len(sentences)
    variations = [_VARIATIONS[index % len(_VARIATIONS)] for index in range(extra)]
    if count > 2:
        variations[-1] = _CLOSING
    return sentences + [template.format(topic=topic) for template in variations]


def _as_sentence(text: str) -> str:
    text = text.strip()
    return text if text[-1] in ".!?;" else text + "."


def _topic(sentence: str) -> str:
    clause = _CLAUSE_BREAK.split(sentence.rstrip(".!?;"))[0]
    words = clause.split()[:TOPIC_WORDS]
    if not words:
        return sentence
    # "A lighthouse" reads "a lighthouse" mid-sentence; names and acronyms keep their case.
    if words[0].lower() in _DETERMINERS:
        words[0] = words[0].lower()
    return " ".join(words)

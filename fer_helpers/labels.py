"""FER2013's label order and class subsets.

One label order is used everywhere: FER2013's own, 0 angry ... 6 neutral.
A class subset (such as the course's happy / neutral / sad) is a list of
names; its model outputs are numbered 0..k-1 in the order the names are given.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import ClassNameError

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""FER2013's seven classes; the position is the FER2013 label."""

COURSE_CLASSES: tuple[str, ...] = ("happy", "neutral", "sad")
"""The 3-class subset the lectures train on, in the order they use."""

# Spellings that other copies of FER2013 use for their class folders.
_ALIASES = {
    "anger": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "scared": "fear",
    "happiness": "happy",
    "sadness": "sad",
    "surprised": "surprise",
}


def canonical_name(name: str) -> str:
    """Return FER2013's spelling of a class name ('Happiness' -> 'happy').

    Raises ClassNameError, naming the seven valid names, for anything else.
    """
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in EMOTIONS:
        raise ClassNameError(f"unknown class name {name!r}: expected one of {', '.join(EMOTIONS)}")
    return key


def parse_classes(classes: str | Iterable[str] | None) -> tuple[str, ...]:
    """Turn 'happy,neutral,sad', a list of names, 'all' or None into class names.

    None means the course's 3 classes; 'all' (or 'seven') means all of FER2013's.
    Names keep the order given, which becomes the order of the model's outputs.
    """
    if classes is None:
        return COURSE_CLASSES
    if isinstance(classes, str):
        if classes.strip().lower() in ("all", "seven", "7"):
            return EMOTIONS
        classes = [c for c in classes.split(",") if c.strip()]
    names = tuple(canonical_name(c) for c in classes)
    if not names:
        raise ClassNameError("no class names given: expected e.g. 'happy,neutral,sad' or 'all'")
    if len(set(names)) != len(names):
        raise ClassNameError(f"class names repeat in {', '.join(names)}: give each class once")
    return names


def fer_labels(names: Iterable[str]) -> list[int]:
    """FER2013 label (0..6) of each class name."""
    return [EMOTIONS.index(canonical_name(n)) for n in names]

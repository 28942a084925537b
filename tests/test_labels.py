"""fer_helpers.labels: FER2013's label order, every spelling of every class, and bad names."""

from __future__ import annotations

import pytest

from fer_helpers.errors import ClassNameError
from fer_helpers.labels import COURSE_CLASSES, EMOTIONS, canonical_name, fer_labels, parse_classes

# FER2013's README (Goodfellow et al. 2013): the label is the position in this list.
FER2013_ORDER = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]

# What other copies of the data set call their class folders, and what that is in FER2013.
SPELLINGS = {
    "angry": ["angry", "anger"],
    "disgust": ["disgust", "disgusted"],
    "fear": ["fear", "fearful", "scared"],
    "happy": ["happy", "happiness"],
    "sad": ["sad", "sadness"],
    "surprise": ["surprise", "surprised"],
    "neutral": ["neutral"],
}


def test_the_label_order_is_fer2013s():
    assert list(EMOTIONS) == FER2013_ORDER
    assert COURSE_CLASSES == ("happy", "neutral", "sad")
    assert fer_labels(FER2013_ORDER) == list(range(7))
    assert fer_labels(COURSE_CLASSES) == [3, 6, 4]


@pytest.mark.parametrize(
    ("spelling", "name"), [(s, name) for name, spellings in SPELLINGS.items() for s in spellings]
)
def test_every_spelling_in_any_case_and_with_spaces_is_its_class(spelling, name):
    for variant in (spelling, spelling.upper(), spelling.title(), f"  {spelling}\t"):
        assert canonical_name(variant) == name
        assert fer_labels([variant]) == [FER2013_ORDER.index(name)]
        assert parse_classes(variant) == (name,)


@pytest.mark.parametrize("bad", ["joy", "", "  ", "happy sad", "contempt", "neutrals", "7"])
def test_an_unknown_name_is_refused_with_the_valid_ones(bad):
    with pytest.raises(ClassNameError, match="unknown class name") as error:
        canonical_name(bad)
    assert all(name in str(error.value) for name in FER2013_ORDER)
    assert repr(bad) in str(error.value)


def test_a_list_keeps_its_order_which_is_the_models_output_order():
    assert parse_classes("sad,happy") == ("sad", "happy")
    assert parse_classes(["Surprise", "anger", "neutral"]) == ("surprise", "angry", "neutral")
    assert parse_classes(" happy , neutral,sad ,") == COURSE_CLASSES  # blanks and a trailing comma
    assert fer_labels(parse_classes("neutral,angry")) == [6, 0]


@pytest.mark.parametrize("everything", ["all", "ALL", " seven ", "7"])
def test_all_means_the_seven_in_fer2013s_order(everything):
    assert parse_classes(everything) == EMOTIONS


def test_none_means_the_courses_three():
    assert parse_classes(None) == COURSE_CLASSES


@pytest.mark.parametrize(
    "repeated", ["happy,happy", "happy,happiness", ["sad", "Sadness"], "fear,scared,angry"]
)
def test_a_class_given_twice_under_any_spelling_is_refused(repeated):
    with pytest.raises(ClassNameError, match="repeat"):
        parse_classes(repeated)


@pytest.mark.parametrize("empty", ["", ",", " , ", []])
def test_no_names_at_all_is_refused(empty):
    with pytest.raises(ClassNameError, match="no class names given"):
        parse_classes(empty)


def test_one_bad_name_in_a_list_is_named():
    with pytest.raises(ClassNameError, match="'joy'"):
        parse_classes("happy,joy,sad")
    with pytest.raises(ClassNameError, match="'joy'"):
        fer_labels(["happy", "joy"])


@pytest.mark.parametrize(
    ("parse", "given", "message"),
    [
        (
            canonical_name,
            "joy?",
            "unknown class name 'joy?': expected one of "
            "angry, disgust, fear, happy, sad, surprise, neutral",
        ),
        (parse_classes, " , ", "no class names given: expected e.g. 'happy,neutral,sad' or 'all'"),
        (
            parse_classes,
            "happy,Happiness,sad",
            "class names repeat in happy, happy, sad: give each class once",
        ),
    ],
)
def test_a_wrong_class_name_gets_one_line_that_says_what_was_expected(parse, given, message):
    # the whole line, written out: the user reads it, so a garbled list is a bug
    with pytest.raises(ClassNameError) as raised:
        parse(given)
    assert str(raised.value) == message

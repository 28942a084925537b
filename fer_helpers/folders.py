"""Any folder of class folders (angry/, happy/, ... in the spellings people use) as FaceData.

    python -m fer_helpers evaluate --weights best-7class --folder my_faces/

is how a model is checked on another data set or on one's own photos: images of
any size and colour are read as gray (decode.read_gray) and framed as FER2013
frames its faces (faces.fit_face); folders of classes FER2013 does not have are
skipped with a note.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data import FaceData, FaceSplit
from .decode import CONVERSION_WORDS, decode_images
from .errors import DataError
from .faces import FRAMING_WORDS, fit_face
from .labels import EMOTIONS, fer_labels
from .sources import FOLDER_SPLIT, find_labelled_folder


def load_labelled_folder(
    folder: str | Path,
    skip_bad: bool = False,
    classes: Sequence[str] | None = None,
    model: str = "the model",
) -> tuple[FaceData, dict]:
    """Every image of a folder of class folders, as FaceData with one split, "folder".

    Images are read with decode.read_gray and framed with fit_face. With
    `classes` (a model's), only the images of those classes are read; the others
    are skipped with a note naming `model`. Returns the data (its notes say what
    was skipped and converted) and the same as numbers: path, files (image files
    read), skipped_classes ({class folder or emotion: images}), skipped_files (one
    message per file left out, with skip_bad), conversions and framing (counts).
    A file that cannot be read stops with a DataError naming it, unless skip_bad.
    """
    found = find_labelled_folder(Path(folder))
    source = found.splits[FOLDER_SPLIT]
    notes, skipped = list(found.notes), dict(found.skipped)
    if classes is not None:
        wanted = fer_labels(classes)
        counts = np.bincount(source.labels, minlength=len(EMOTIONS))
        unknown = {EMOTIONS[c]: int(n) for c, n in enumerate(counts) if n and c not in wanted}
        if unknown:
            listed = ", ".join(f"{name} {n}" for name, n in unknown.items())
            notes.append(
                f"skipped {sum(unknown.values())} image(s) of classes {model} does not know: "
                f"{listed}"
            )
            skipped.update(unknown)
        absent = [name for name, c in zip(classes, wanted) if not counts[c]]
        if absent:
            notes.append(
                f"no images of {', '.join(absent)}: balanced accuracy is the mean recall of "
                "the classes present"
            )
        source = source.take(np.flatnonzero(np.isin(source.labels, wanted)))
        if not len(source):
            raise DataError(
                f"no images in {found.root} of the classes {model} knows "
                f"({', '.join(classes)}): nothing to evaluate"
            )
    try:
        decoded = decode_images(source, fit=fit_face, skip_bad=skip_bad)
    except DataError as err:
        raise DataError(f"{err}; --skip-bad leaves out the files that cannot be read") from err
    if not len(decoded.kept):
        raise DataError(
            f"none of the {len(source)} image files in {found.root} could be read; "
            f"the first: {decoded.bad[0]}"
        )
    split = FaceSplit(
        FOLDER_SPLIT,
        decoded.images,
        source.labels[decoded.kept],
        np.asarray(source.ids)[decoded.kept],
    )
    notes += [f"left out: {message}" for message in decoded.bad]
    framed = [f"{n} {words}" for how, words in FRAMING_WORDS.items() if (n := decoded.framing[how])]
    notes.append(f"framing: {', '.join(framed)}")
    done = [
        f"{n} {words}"
        for what, words in CONVERSION_WORDS.items()
        if (n := decoded.conversions[what])
    ]
    if done:
        notes.append(f"converted: {', '.join(done)}")
    data = FaceData({FOLDER_SPLIT: split}, "labelled folder", found.layout, found.root, notes)
    report = {
        "path": str(found.root),
        "files": len(source),
        "skipped_classes": skipped,
        "skipped_files": decoded.bad,
        "conversions": {what: n for what in CONVERSION_WORDS if (n := decoded.conversions[what])},
        "framing": {how: n for how in FRAMING_WORDS if (n := decoded.framing[how])},
    }
    return data, report

"""The series in one place: what each notebook teaches and how long it takes.

README's table of notebooks, the course's index page (`python3 tasks.py site`)
and the teacher's guide all read this catalogue, so a blurb or a time is
written once. Keys are the notebooks' file names without `.ipynb`.

The times are one run each on the project's machine (2 CPU cores, no GPU) on the full
FER2013: the series run of 2026-12-04 (README, "The series on full FER2013":
`FER2013_DIR=../shared/fer2013 python3 tasks.py course` on an Intel Xeon with bfloat16
instructions, with no saved model, so every notebook trained what it trains), in today's
numbering. 01-05 were three notebooks then and were timed together (02 and 03 were each split
in two later that day). 12 and 13, split from one notebook that day, by `python3 tasks.py
notebook 12` and `... 13` on an AMD EPYC with bfloat16 instructions (the second of two runs;
the first, with the data's cache not yet in memory, took 26 s for 12). A laptop CPU with more
cores is faster.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Lesson:
    """One notebook of the series as the index and README present it."""

    stem: str  # file name without .ipynb, e.g. "06_train_3class"
    teaches: str  # what it teaches, in a line (markdown: `code` allowed)
    full_seconds: float | None  # time of a full-data run; None: counted in another lesson's
    time_note: str = ""  # how to read the time, e.g. "01–05 together"

    @property
    def number(self) -> str:
        return self.stem[:2]

    def full_time(self) -> str:
        """The full-data time as people write it: '61 s', '17.8 min', or the note alone."""
        if self.full_seconds is None:
            return self.time_note
        seconds = self.full_seconds
        text = f"{seconds:.0f} s" if seconds < 180 else f"{seconds / 60:.1f} min"
        return f"{text} ({self.time_note})" if self.time_note else text


LESSONS: tuple[Lesson, ...] = (
    Lesson(
        "01_setup_and_data",
        "the device (CUDA, MPS, CPU); where the data come from; faces per emotion; images per "
        "class in every split (the imbalance); blank images and duplicates",
        14,
        "01–05 together",
    ),
    Lesson(
        "02_softmax_cross_entropy",
        "labels as integers and one-hot vectors; softmax by hand and made safe for large "
        "scores; argmax; the course's three cross-entropy examples by hand, and why a "
        "confident wrong answer costs so much",
        None,
        "in 01's time",
    ),
    Lesson(
        "03_crossentropyloss_and_gradient",
        "`nn.CrossEntropyLoss` takes raw scores and integer labels (and the bug of feeding it "
        "probabilities); an interactive explorer; the gradient p − y derived, checked against "
        "autograd, and gradient descent on the scores by hand",
        None,
        "in 01's time",
    ),
    Lesson(
        "04_si100facenet_dimensions",
        "Conv2d, MaxPool2d, LeakyReLU, flatten, Linear; the output-size formula; the shape "
        "after every layer, checked with the network's print toggle and forward hooks; the "
        "receptive field of every layer",
        None,
        "in 01's time",
    ),
    Lesson(
        "05_si100facenet_parameters",
        "parameters per layer by formula and by PyTorch; 7 classes, other input sizes, one "
        "channel; batch norm and dropout, and why `model.train()` and `model.eval()` differ; "
        "SI100FaceNet written by the learner",
        None,
        "in 01's time",
    ),
    Lesson(
        "06_train_3class",
        "Dataset, DataLoader, Lecture B's ImageFolder helper and the in-memory FaceLoader; the "
        "training step, one epoch and validation written by the learner; the training loop with "
        "the handout's log lines, keeping the best epoch, `face_expression.pth`; `fit`, the same "
        "loop with checkpoints and resuming; the course's recipe and the fast one side by side; "
        "training curves with balanced accuracy, and overfitting; `weights_only=True`",
        132,
    ),
    Lesson(
        "07_evaluate",
        "inference with `weights_only=True`; a batch of predictions; the confusion matrix and "
        'every metric by hand (the handout\'s per-class "accuracy" is precision; recall, '
        "weighted recall, F1), in the course's print format, checked against scikit-learn; "
        "balanced accuracy; mirror test-time augmentation",
        62,
    ),
    Lesson(
        "08_seven_classes_and_imbalance",
        "the 7-class model; what imbalance does to rare classes; class-weighted loss and "
        "balanced sampling compared in one table, then over three seeds: an effect or chance; "
        "the most confused pairs with their faces and scores; targeted mirroring; what the "
        "shipped best-7class (two SmallVGGs that vote) reaches; transfer learning from seven "
        "classes to three",
        402,
    ),
    Lesson(
        "09_feature_maps",
        "forward hooks; the activations of every conv layer for one face per emotion "
        "(48 → 24 → 12 → 6); the channels that respond most to each emotion; an interactive "
        "viewer",
        168,
    ),
    Lesson(
        "10_dacl_attention",
        "Deep Attentive Center Loss: a ResNet-18 adapted to 48×48, the attention net, the "
        "sparse center loss with learned class centres; the ablation (softmax only, plain "
        "center loss, DACL) fine-tuned from a shipped face-trained ResNet-18, on balanced "
        "accuracy over three seeds; attention weights per class, and whether faces of one "
        "class attend alike",
        348,
    ),
    Lesson(
        "11_netron",
        "export to ONNX with `torch.onnx`, `onnx.checker`, the same scores as PyTorch; the "
        "graph in netron; every block with its parameters and shapes; batch norm folded into "
        "the convolutions",
        12,
    ),
    Lesson(
        "12_faces_in_photos",
        "faces found by OpenCV's Haar cascade (the integral image, `min_neighbors`, where it "
        "fails), cropped like FER2013 with the margin measured, normalised as in training, "
        "classified and labelled with probabilities; `predict` from a terminal; what emotion "
        "recognition can and cannot tell",
        14,
    ),
    Lesson(
        "13_video_webcam_and_your_faces",
        "MTCNN for the faces the cascade misses; a video followed face by face, by the IoU of "
        "boxes written by the learner, with its emotions smoothed over frames; an upload box "
        "and a webcam loop; a model checked on a folder of your own labelled faces",
        9,
    ),
    Lesson(
        "14_model_comparison",
        "SI100FaceNet, Report 1's ConvNet 5, Report 3's ResNet-9 and DACL by one recipe on all "
        "the training faces; FLOPs of a convolution by hand, checked with PyTorch's counter; the "
        "cheaper two trained live beside the four full-budget runs; parameters, FLOPs, seconds "
        "per epoch, accuracy and balanced accuracy with 95% intervals (Wilson, bootstrap) in one "
        "table and two plots; an effect, or the validation faces' noise",
        143,
    ),
)

BY_STEM: dict[str, Lesson] = {lesson.stem: lesson for lesson in LESSONS}


def lesson(stem: str) -> Lesson | None:
    """The catalogue entry of a notebook (its file name without .ipynb), or None."""
    return BY_STEM.get(stem)


def total_full_seconds() -> float:
    """The whole series on full data, the sum of the measured times."""
    return sum(entry.full_seconds or 0 for entry in LESSONS)


def markdown_table(with_times: bool = False) -> str:
    """README's table of notebooks, from this catalogue."""
    header = "| notebook | what it teaches |" + (
        " full FER2013, 2-core CPU |" if with_times else ""
    )
    rule = "|---|---|" + ("---:|" if with_times else "")
    rows = [
        f"| `{entry.stem}` | {entry.teaches} |" + (f" {entry.full_time()} |" if with_times else "")
        for entry in LESSONS
    ]
    return "\n".join([header, rule, *rows])

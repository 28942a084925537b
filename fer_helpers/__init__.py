"""fer_helpers: the code the FER course notebooks share.

Each module holds one idea; notebooks import what they need from it. Lower modules never
import higher ones (tests/test_project.py checks that no import goes round in a circle).

Data
- labels        FER2013's label order, class subsets by name
- sources       finding FER2013 on disk in any download layout
- decode        decoding images once into uint8 arrays, with a cache
- synthetic     generated cartoon faces for when no FER2013 copy is found
- audit         blank images and duplicates within and across splits
- data          splits in memory, FaceDataset and FaceLoader; synthetic fallback
- augment       batched flips, rotations, zooms and shifts; shift-and-mirror crops; mixup

Models and what they compute
- models        SI100FaceNet, ConvNet 5, ResNet-9, SmallVGG, DACL's ResNet-18, Ensemble
- losses        class weights, the (sparse) center loss, DACL's total loss
- metrics       confusion matrix, precision, recall, F1, the course's print line
- devices       CUDA, MPS or CPU; float32 or bfloat16
- allocator     keeping freed tensor memory, so that training steps do not page-fault
- inference     class probabilities, test-time augmentation, predictions over a loader

Training
- train         seeding, the course's factory and fit, the one training loop; validation
- distributed   data-parallel training under torchrun
- averaging     an exponential moving average of the weights, kept beside training
- checkpoints   saving and loading checkpoints safely (weights_only=True)
- recipes       training recipes as data, the loaders for a recipe, train-or-load
- pretrained    the weights shipped in fer_helpers/weights/, by name, with model cards

The notebooks' topics
- imbalance     notebook 08: weighted loss, balanced sampling, targeted mirroring compared
- features      notebook 09: forward hooks, feature maps, the channels of each emotion
- dacl          notebook 10: the DACL ablation, attention weights per class
- export        notebook 11: ONNX export, checked against PyTorch
- faces         notebook 12: faces found in photos, cropped like FER2013, classified
- video         notebook 13: faces in videos and from a webcam, followed by id, smoothed
- detectors     face detectors by name: the Haar cascade, MTCNN (faces Haar misses)
- folders       any folder of class folders (other data sets, one's own photos) as data
- comparison    notebook 14: four networks, one recipe: parameters, FLOPs, time, accuracy
- plots         the figures the notebooks draw, in the course's style (use_course_style)
- exercises     the checkers of the notebooks' exercises (one module per notebook topic)

Tools
- bench         the course's recipe and pipeline against the fast one, side by side; a
                model's inference speed
- experiments   named experiments (08, 10, 14, transfer) over seeds; results files, their tables
- cli           `python -m fer_helpers info | train | evaluate | bench | export | predict`;
                `--version`; `info` and `evaluate` take `--folder DIR` (folders)
- errors        FerError and its kinds: one-line messages that name the file
- files         writing files atomically
- paths         where data, weights and figures live
- course        the course's own tooling: site, slides, hand-outs, catalogue (not for notebooks)
"""

# The one definition of the version: pyproject.toml reads it, `--version` prints it.
__version__ = "0.1.0"

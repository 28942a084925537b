"""fer_helpers: the code the FER course notebooks share.

Each module holds one idea; notebooks import what they need from it:

- labels       FER2013's label order, class subsets by name
- sources      finding FER2013 on disk in any download layout
- decode       decoding images once into uint8 arrays, with a cache
- data         splits in memory, FaceDataset and FaceLoader; synthetic fallback
- synthetic    generated cartoon faces for when no FER2013 copy is found
- augment      batched flips, rotations, zooms and shifts; shift-and-mirror crops
- audit        blank images and duplicates within and across splits
- models       SI100FaceNet (optionally with batch norm and dropout), ConvNet 5, ResNet-9,
               SmallVGG (the two nets of the shipped best-7class), Ensemble
- metrics      confusion matrix, precision, recall, F1, the course's print line
- allocator    keeping freed tensor memory, so that training steps do not page-fault
- train        device choice, precision, seeding, the fit loop, validation, predictions
- recipes      training recipes (the course's, the fast one) and the notebooks' 3-class model
- distributed  data-parallel training under torchrun
- checkpoints  saving and loading checkpoints safely
- pretrained   the weights shipped in fer_helpers/weights/, by name, with model cards
- bench        the course's recipe and pipeline against the fast one, side by side
- plots        the figures the notebooks draw
- cli          `python -m fer_helpers info | train | evaluate | bench | export | predict`
"""

__version__ = "0.1.0"

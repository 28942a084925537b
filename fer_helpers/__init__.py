"""fer_helpers: the code the FER course notebooks share.

Each module holds one idea; notebooks import what they need from it:

- labels       FER2013's label order, class subsets by name
- sources      finding FER2013 on disk in any download layout
- decode       decoding images once into uint8 arrays, with a cache
- data         splits in memory, FaceDataset and FaceLoader; synthetic fallback
- synthetic    generated cartoon faces for when no FER2013 copy is found
- augment      batched flips, rotations, zooms and shifts on tensors
- audit        blank images and duplicates within and across splits
- models       SI100FaceNet, the course's network
- metrics      confusion matrix, precision, recall, F1, the course's print line
- train        device choice, seeding, the fit loop, predictions
- checkpoints  saving and loading checkpoints safely
- plots        the figures the notebooks draw
- cli          `python -m fer_helpers info | train | evaluate`
"""

__version__ = "0.1.0"

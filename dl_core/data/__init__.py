"""The data a network learns from, all offline: 2-D points, images, sequences and their sources,
and `TensorData`, the one dataset type a training job reads. Nothing here knows the engine."""
from .data2d import DATASETS, FEATURES, DataError, Dataset2D, make_dataset
from .images import IMAGE_DATASETS, ImageDataset
from .seqdata import SeqData, SeqDataError
from .sequences import SEQ_TASKS
from .tensors import TensorData

__all__ = ["DATASETS", "FEATURES", "IMAGE_DATASETS", "SEQ_TASKS", "DataError", "Dataset2D", "ImageDataset",
           "SeqData", "SeqDataError", "TensorData", "make_dataset"]

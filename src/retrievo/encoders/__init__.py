from retrievo.encoders.base import Encoder
from retrievo.encoders.dense import DenseEncoder

__all__ = ["DenseEncoder", "Encoder"]

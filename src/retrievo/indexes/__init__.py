from retrievo.indexes.flat import FlatIndex
from retrievo.indexes.inverted import BM25Stats, InvertedIndex

__all__ = ["BM25Stats", "FlatIndex", "InvertedIndex"]

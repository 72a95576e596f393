from retrievo.store.collection import Collection
from retrievo.store.loaders import FieldMap, iter_source, load_documents

__all__ = ["Collection", "FieldMap", "iter_source", "load_documents"]

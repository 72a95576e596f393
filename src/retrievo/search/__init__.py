from retrievo.search.fusion import convex, fuse, rrf

__all__ = ["convex", "fuse", "rrf"]

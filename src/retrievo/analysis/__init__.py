from retrievo.analysis.analyzer import Analyzer

__all__ = ["Analyzer"]

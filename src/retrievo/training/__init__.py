"""Learning from relevance judgements: judged queries with mined negatives (:mod:`.judged`), and a trained
cross-encoder reranker (:mod:`.reranker`)."""

from retrievo.training.reranker import RerankerTraining, train_reranker

__all__ = ["RerankerTraining", "train_reranker"]

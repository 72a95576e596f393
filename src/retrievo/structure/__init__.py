"""Structure beyond flat passages: tool catalogues (:mod:`.tools`), and more to come (long documents, trees,
topics)."""

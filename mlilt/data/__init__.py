"""Image-text data: pair loaders (``pairs``), image opening (``images``), transforms, checks, evaluation sets."""

"""Reviews in, token ids out: the IMDB sources, the text rule, splits and the tokenized-data cache."""

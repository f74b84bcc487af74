"""One adapter per platform, from its API to the neutral model; no policy lives here."""

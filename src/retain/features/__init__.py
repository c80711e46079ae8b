"""Feature pipelines built from the dataset spec (the same fitted pipeline trains and serves)."""

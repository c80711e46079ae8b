"""The prediction service: FastAPI app, spec-generated schemas, model cache."""

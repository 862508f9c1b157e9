"""The REST API (SPEC section 6): a FastAPI app serving the registry's champion model.

`app.create_app` builds the application from `config.ServeSettings`; `amhs serve` runs it
under uvicorn. Modules: schemas (request/response models from the contract), validation (raw
JSON rows to numpy per line), model_store (champion loading and hot reload), prediction_log
(background writer), metrics (Prometheus), tiny (a tiny champion for tests and benchmarks).
"""

-- the MLflow tracking store and registry live beside Dagster's storage
CREATE DATABASE mlflow;

"""What `python run.py serve` reads from configs/serving.yaml (no secrets: the token comes from the environment
or a ZenML secret)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


class RequestLogOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Any SQLAlchemy URL; a relative sqlite path is under the project folder. null: no request log.
    url: Optional[str] = "sqlite:///serving/requests.db"
    table: str = "scored_requests"
    retention_days: float = Field(default=30, gt=0)  # older rows are deleted at start and every hour


class TokenOptions(BaseModel):
    """Where the bearer token comes from when the server listens beyond loopback (the environment first)."""

    model_config = ConfigDict(extra="forbid")

    env: str = "HEARTML_SERVE_TOKEN"
    zenml_secret: Optional[str] = "heartml-serving"  # a ZenML secret with the token under `key`
    key: str = "token"


class ExplainOptions(BaseModel):
    """Per-patient SHAP values on request (`"explain": true`): TreeSHAP for tree ensembles, else permutation."""

    model_config = ConfigDict(extra="forbid")

    background_rows: int = Field(default=50, ge=5)  # training reference rows the values are measured against
    max_evals: int = Field(default=150, ge=10)  # permutation explainer's model calls per patient
    max_records: int = Field(default=20, ge=1)  # patients one request may ask to explain


class AzureEndpointOptions(BaseModel):
    """`python run.py serve --stack azure`: the same version as an Azure ML managed online endpoint (no-code MLflow
    deployment: Azure ML's MLflow scoring server, the record guard inside the model)."""

    model_config = ConfigDict(extra="forbid")

    endpoint_name: str = Field(default="heartml-scoring", pattern=r"^[a-zA-Z][a-zA-Z0-9-]{2,31}$")
    deployment_name: str = Field(default="blue", pattern=r"^[a-zA-Z][a-zA-Z0-9-]{2,31}$")
    instance_type: str = "Standard_DS3_v2"
    instance_count: int = Field(default=1, ge=1)
    auth_mode: Literal["key", "aml_token"] = "key"
    request_timeout_ms: int = Field(default=5000, ge=1000, le=180000)
    max_concurrent_requests_per_instance: int = Field(default=2, ge=1)


class ServeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_name: Optional[str] = None  # null: the model configs/training.yaml trains (its model.name)
    alias: str = "production"
    host: str = "127.0.0.1"  # beyond loopback (e.g. 0.0.0.0) a bearer token is required
    port: int = Field(default=8080, ge=0, le=65535)
    follow_interval_seconds: float = Field(default=10, gt=0)  # how often the alias is checked
    max_records: int = Field(default=1000, ge=1)  # patients per request
    access_log: bool = False  # uvicorn's one line per request (method, path, status; never a body)
    request_log: RequestLogOptions = Field(default_factory=RequestLogOptions)
    token: TokenOptions = Field(default_factory=TokenOptions)
    explain: ExplainOptions = Field(default_factory=ExplainOptions)
    azure: AzureEndpointOptions = Field(default_factory=AzureEndpointOptions)

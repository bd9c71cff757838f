"""Online scoring of the served alias with FastAPI (OpenAPI at /openapi.json, interactive docs at /docs).

POST /predict scores one or many patients: probability, class at the version's registered threshold, model name and
version, and on request each patient's SHAP values. Every request is validated with the training schema's rules
first (the pipeline's messages: 400 naming the request, column and rule); a body that is not the documented shape is
a 422 in the same one-line style. GET /health (the process answers) and /ready (a model is loaded) need no token;
/predict and /model do when the server was given one.
"""


import logging
import secrets
import time
import uuid
from typing import Any, Dict, List, Literal, Optional, Tuple, Type, Union

import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, create_model

from heartml.core.dataset import DatasetSpec
from heartml.core.errors import InputError
from heartml.core.shapley import ShapOptions, shap_patients
from heartml.core.validation import validate_records
from heartml.serving.follower import LoadedModel, ModelFollower
from heartml.serving.options import ServeOptions
from heartml.serving.request_log import RequestLog

logger = logging.getLogger(__name__)

SOURCE = "request"  # how error messages name what was sent


class Explanation(BaseModel):
    method: str  # tree | permutation (heartml.core.shapley)
    base_value: float  # the background's mean probability; base_value + sum(values) = probability
    values: Dict[str, float]  # raw clinical feature -> contribution to P(positive)


class Prediction(BaseModel):
    probability: float = Field(description="P(positive), 0..1")
    predicted_class: int = Field(description="1 when probability >= decision_threshold")
    explanation: Optional[Explanation] = None


class PredictResponse(BaseModel):
    request_id: str
    model_name: str
    model_version: str
    decision_threshold: float
    predictions: List[Prediction]


class ModelInfo(BaseModel):
    model_name: str
    model_version: str
    alias: str
    model_uri: str
    decision_threshold: float
    loaded_at: str
    load_seconds: float  # from the alias check that found this version to serving it
    features: Dict[str, str]  # column -> kind
    follow_interval_seconds: float
    last_checked: Optional[str]
    last_error: Optional[str]


class Health(BaseModel):
    status: Literal["ok", "loading"]
    model_version: Optional[str] = None


class ErrorBody(BaseModel):
    detail: List[str]  # one line per problem


def record_model(dataset: DatasetSpec) -> Type[BaseModel]:
    """One patient as JSON: the training schema's columns, typed loosely (numbers, or text for categories, or null
    for "not measured"); ranges and categories are documented in the schema and checked by the training rules,
    so the messages are the pipeline's. Other fields (an identifier) are allowed and ignored."""
    fields: Dict[str, Any] = {}
    for name, feature in dataset.features.items():
        if name not in dataset.model_features:
            continue
        extra: Dict[str, Any] = {}
        if feature.kind == "categorical":
            kind: Any = Optional[str]
            extra["enum"] = [*(feature.categories or []), None]
        else:
            kind = Optional[float]
            if feature.kind == "binary":
                extra["enum"] = [0, 1, None]
            else:
                extra.update({k: v for k, v in (("minimum", feature.min), ("maximum", feature.max)) if v is not None})
        description = " ".join(part for part in (feature.description, "null: not measured") if part)
        fields[name] = (kind, Field(..., description=description, json_schema_extra=extra))
    return create_model("PatientRecord", __config__=ConfigDict(extra="allow"), **fields)


def create_app(options: ServeOptions, follower: ModelFollower, request_log: Optional[RequestLog] = None,
               token: Optional[str] = None, dataset: Optional[DatasetSpec] = None) -> FastAPI:
    """The app for `follower`'s model. `dataset` (the served version's training schema) shapes the documented
    request body; `token`, when given, is required as `Authorization: Bearer <token>` on /predict and /model."""
    dataset = dataset or (follower.current.serving.dataset if follower.current else None)
    if dataset is None:
        raise ValueError("create_app needs the training schema: a loaded model or `dataset`")
    Record = record_model(dataset)
    PredictRequest = create_model(
        "PredictRequest",
        records=(List[Record], Field(..., min_length=1, max_length=options.max_records,  # type: ignore[valid-type]
                                     description=f"1 to {options.max_records} patients")),
        explain=(bool, Field(False, description=f"each patient's SHAP values (at most "
                                                f"{options.explain.max_records} patients per request)")),
    )
    bearer = HTTPBearer(auto_error=False, description="Required when the server listens beyond loopback")

    def authorized(credentials: Optional[HTTPAuthorizationCredentials] = Depends(bearer)) -> None:
        if token is None:
            return
        if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(401, detail=["request: rule 'bearer token' failed: missing or wrong token"],
                                headers={"WWW-Authenticate": "Bearer"})

    def served() -> LoadedModel:
        model = follower.current
        if model is None:
            raise HTTPException(503, detail=["no model loaded yet"])
        return model

    app = FastAPI(title="heartml scoring", version="1", description=__doc__,
                  responses={400: {"model": ErrorBody}, 401: {"model": ErrorBody}, 422: {"model": ErrorBody}})

    @app.exception_handler(RequestValidationError)
    async def shape_errors(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": [_shape_line(e) for e in error.errors()][:20]}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_errors(_: Request, error: HTTPException) -> JSONResponse:
        detail = error.detail if isinstance(error.detail, list) else [str(error.detail)]
        return JSONResponse({"detail": detail}, status_code=error.status_code, headers=error.headers)

    @app.get("/health", response_model=Health, summary="The process answers")
    def health() -> Health:
        model = follower.current
        return Health(status="ok" if model else "loading", model_version=model.serving.version if model else None)

    @app.get("/ready", response_model=Health, summary="A model is loaded (503 until then)",
             responses={503: {"model": ErrorBody}})
    def ready() -> Health:
        return Health(status="ok", model_version=served().serving.version)

    @app.get("/model", response_model=ModelInfo, dependencies=[Depends(authorized)],
             summary="The served version, its threshold and schema, and how the alias is followed")
    def model_info() -> ModelInfo:
        loaded = served()
        model = loaded.serving
        return ModelInfo(
            model_name=model.name, model_version=model.version, alias=model.alias, model_uri=model.uri,
            decision_threshold=model.decision_threshold, loaded_at=loaded.loaded_at.isoformat(),
            load_seconds=loaded.load_seconds,
            features={name: model.dataset.features[name].kind for name in model.dataset.model_features},
            follow_interval_seconds=follower.interval,
            last_checked=follower.last_checked.isoformat() if follower.last_checked else None,
            last_error=follower.last_error)

    @app.post("/predict", response_model=PredictResponse, response_model_exclude_none=True,
              dependencies=[Depends(authorized)], responses={503: {"model": ErrorBody}},
              summary="Score patients with the served version")
    def predict(body: PredictRequest) -> PredictResponse:  # type: ignore[valid-type]
        loaded = served()  # this request's version, whatever the follower does meanwhile
        model = loaded.serving
        records = [record.model_dump(include=set(model.dataset.model_features) & set(record.model_fields_set))
                   for record in body.records]  # type: ignore[attr-defined]
        if body.explain and len(records) > options.explain.max_records:  # type: ignore[attr-defined]
            raise HTTPException(400, detail=[f"{SOURCE}: rule 'at most {options.explain.max_records} patients "
                                             f"to explain' failed: {len(records)} sent"])
        started = time.perf_counter()
        frame, probability = score(loaded, records)
        classes = (probability >= model.decision_threshold).astype(int)
        explanations = explain(loaded, frame, options) if body.explain else [None] * len(records)  # type: ignore
        request_id = str(uuid.uuid4())
        if request_log is not None:
            request_log.append(request_id, model.name, model.version, model.decision_threshold, records,
                               probability.tolist(), classes.tolist())
        logger.debug("request %s: %d patients, version %s, %.1f ms", request_id, len(records), model.version,
                     (time.perf_counter() - started) * 1000)
        return PredictResponse(
            request_id=request_id, model_name=model.name, model_version=model.version,
            decision_threshold=model.decision_threshold,
            predictions=[Prediction(probability=float(p), predicted_class=int(c), explanation=e)
                         for p, c, e in zip(probability, classes, explanations)])

    return app


def score(model: LoadedModel, records: List[Dict[str, Any]]) -> Tuple[pd.DataFrame, np.ndarray]:
    """The validated records and P(positive) for each; a 400 with the training rules' messages otherwise."""
    frame = pd.DataFrame.from_records(records)
    try:
        frame = validate_records(frame, model.serving.dataset, SOURCE)
    except InputError as error:
        raise HTTPException(400, detail=error.lines) from None
    return frame, model.scorer.predict_proba(frame)[:, 1]


def explain(model: LoadedModel, frame: pd.DataFrame, options: ServeOptions) -> List[Explanation]:
    if model.reference is None:
        raise HTTPException(400, detail=[f"{SOURCE}: rule 'explainable model' failed: version {model.serving.version} "
                                         f"carries no training reference to explain against"])
    dataset = model.serving.dataset
    background = model.reference[dataset.model_features]
    shap_options = ShapOptions(background_rows=options.explain.background_rows, max_evals=options.explain.max_evals,
                               max_patients=len(frame), n_jobs=1)  # no worker processes forked from the server
    explained = shap_patients(model.scorer, background, frame, range(len(frame)), dataset, shap_options)
    return [Explanation(method=explained.method, base_value=patient.base_value, values=patient.values)
            for patient in explained.patients]


def _shape_line(error: Dict[str, Any]) -> str:
    """A pydantic error as one line: `request: record 0: column 'Age': rule 'number' failed (got 'abc')`."""
    location: List[Union[str, int]] = [part for part in error.get("loc", ()) if part != "body"]
    where = ""
    if len(location) >= 2 and location[0] == "records" and isinstance(location[1], int):
        where = f"record {location[1]}: "
        location = location[2:]
    elif location:
        where = f"field '{'.'.join(map(str, location))}': "
        location = []
    column = f"column '{'.'.join(map(str, location))}': " if location else ""
    kind = error.get("type", "")
    if kind == "missing":
        rule = "rule 'required column' failed: the field is missing"
    else:
        rule = f"rule '{kind}' failed: {error.get('msg', '')}"
        if "input" in error and kind not in ("json_invalid",):
            rule += f" (got {str(error['input'])[:40]!r})"
    return f"{SOURCE}: {where}{column}{rule}"

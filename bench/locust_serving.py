"""Locust user for bench/serving_speed.py: POSTs the same patients again and again to one scoring server.

Environment: BENCH_API (heartml | mlflow), BENCH_PATIENTS (patients per request), BENCH_RECORDS (a JSON file of
patient records).
"""

import json
import os

from locust import FastHttpUser, constant, task

API = os.environ["BENCH_API"]
with open(os.environ["BENCH_RECORDS"], encoding="utf-8") as handle:
    RECORDS = json.load(handle)[: int(os.environ["BENCH_PATIENTS"])]
# heartml's own body, or MLflow's scoring protocol (numbers as the model signature's doubles).
PATH, BODY = (("/predict", {"records": RECORDS}) if API == "heartml"
              else ("/invocations", {"dataframe_records": RECORDS}))
PAYLOAD = json.dumps(BODY)


class Scorer(FastHttpUser):
    wait_time = constant(0)

    @task
    def score(self) -> None:
        with self.client.post(PATH, data=PAYLOAD, headers={"Content-Type": "application/json"},
                              catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")

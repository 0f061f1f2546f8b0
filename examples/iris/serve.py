"""Serve the model that train.py fitted: the same code path for the experiment and the API.

tierbot deploys `serve.py:predict` with `outputs/model.pkl` (see tierbot.yaml, `deploy:`).

    predict({"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2})
    -> {"predictions": [{"label": "setosa", "probabilities": {"setosa": 1.0, ...}}]}

A request is one instance (a mapping of feature name to number), a list of instances, or
`{"instances": [...]}`. The answer is plain JSON data.
"""

import json
import pickle
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = "outputs/model.pkl"


@lru_cache(maxsize=4)
def load_model(model_path: str = DEFAULT_MODEL) -> dict:
    """The bundle train.py pickled: {"model", "features", "classes", "params"}; loaded once per path."""
    path = Path(model_path)
    if not path.is_absolute() and not path.exists():
        path = HERE / path  # relative to this file when not found from the working directory
    with path.open("rb") as handle:
        return pickle.load(handle)


def _instances(features) -> list[dict]:
    if isinstance(features, dict) and "instances" in features:
        features = features["instances"]
    if isinstance(features, dict):
        features = [features]
    if not isinstance(features, list) or not features or not all(isinstance(row, dict) for row in features):
        raise ValueError(
            "expected an instance (a mapping of feature to number), a non-empty list of them, "
            "or {'instances': [...]}"
        )
    return features


def predict(features, model_path: str = DEFAULT_MODEL) -> dict:
    bundle = load_model(model_path)
    names, classes = bundle["features"], bundle["classes"]
    rows = []
    for i, instance in enumerate(_instances(features)):
        missing = [name for name in names if name not in instance]
        if missing:
            raise ValueError(f"instance {i} is missing {', '.join(missing)} (expected {', '.join(names)})")
        try:
            rows.append([float(instance[name]) for name in names])
        except (TypeError, ValueError):
            raise ValueError(f"instance {i}: every feature must be a number") from None
    predictions = []
    for p in bundle["model"].predict_proba(rows):
        probabilities = {name: round(float(value), 6) for name, value in zip(classes, p, strict=True)}
        predictions.append({"label": classes[int(p.argmax())], "probabilities": probabilities})
    return {"predictions": predictions}


if __name__ == "__main__":
    # Smoke test: one clear example of each class; run `python train.py` first.
    request = [
        {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
        {"sepal_length": 6.0, "sepal_width": 2.9, "petal_length": 4.5, "petal_width": 1.5},
        {"sepal_length": 6.9, "sepal_width": 3.1, "petal_length": 5.8, "petal_width": 2.3},
    ]
    answer = predict(request)
    print(json.dumps(answer, indent=2))
    labels = [p["label"] for p in answer["predictions"]]
    assert labels == ["setosa", "versicolor", "virginica"], labels
    assert predict(request[0]) == {"predictions": answer["predictions"][:1]}
    print("smoke test passed")

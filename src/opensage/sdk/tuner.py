"""`HyperparameterTuner`: a tuning job described from an Estimator, as in the SageMaker SDK v2
(`sagemaker.tuner`, `sagemaker.parameter`, `sagemaker.analytics`).

>>> tuner = HyperparameterTuner(xgb, "validation:rmse", {"eta": ContinuousParameter(0.1, 0.5)},
...                             objective_type="Minimize", max_jobs=4, max_parallel_jobs=2)
...                                                                    # doctest: +SKIP
>>> tuner.fit({"train": train_uri, "validation": validation_uri})     # doctest: +SKIP
>>> tuner.best_training_job()                                          # doctest: +SKIP
'xgboost-250101-1200-003-1f2e3d4c'
>>> tuner.analytics().dataframe()                                      # doctest: +SKIP
>>> predictor = tuner.deploy(1, "ml.m5.large")                         # doctest: +SKIP

The trials' TrainingJobDefinition is the request the estimator's own `fit` would send (in script
mode the code is uploaded once, under the tuning job's name), with the estimator's
hyperparameters as StaticHyperParameters less the tuned ones. Script-mode estimators JSON-encode
their hyperparameters, so categorical values are JSON-encoded too, as the SDK does for framework
estimators (spec §5.3).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from opensage.sdk.algorithms import AmazonAlgorithmEstimatorBase
from opensage.sdk.amazon import RecordSet
from opensage.sdk.deserializers import BaseDeserializer
from opensage.sdk.errors import UnexpectedStatusError
from opensage.sdk.estimator import Estimator, TrainingInput
from opensage.sdk.predictor import Predictor
from opensage.sdk.progress import Bar, tuning_counts
from opensage.sdk.serializers import BaseSerializer
from opensage.sdk.session import Session

if TYPE_CHECKING:
    import pandas as pd

IN_PROGRESS = {"InProgress", "Stopping"}
SUCCEEDED = {"Completed", "Stopped"}
GRID = "Grid"


class ParameterRange:
    """A hyperparameter's range (numeric; CategoricalParameter lists values instead); `kind`
    names the ParameterRanges list it goes in."""

    kind: ClassVar[str] = ""

    def __init__(
        self, min_value: int | float, max_value: int | float, scaling_type: str = "Auto"
    ) -> None:
        self.min_value = min_value
        self.max_value = max_value
        self.scaling_type = scaling_type

    def as_tuning_range(self, name: str) -> dict[str, Any]:
        """The API's range: every value a string."""
        return {
            "Name": name,
            "MinValue": str(self.min_value),
            "MaxValue": str(self.max_value),
            "ScalingType": self.scaling_type,
        }


class ContinuousParameter(ParameterRange):
    kind = "Continuous"


class IntegerParameter(ParameterRange):
    kind = "Integer"


class CategoricalParameter(ParameterRange):
    kind = "Categorical"

    def __init__(self, values: list[Any] | Any) -> None:
        self.values = [str(v) for v in (values if isinstance(values, list) else [values])]

    def as_tuning_range(self, name: str) -> dict[str, Any]:
        return {"Name": name, "Values": self.values}

    def as_json_range(self, name: str) -> dict[str, Any]:
        """The values JSON-encoded, for script-mode estimators whose hyperparameters are JSON."""
        return {"Name": name, "Values": [json.dumps(v) for v in self.values]}


class WarmStartTypes(Enum):
    IDENTICAL_DATA_AND_ALGORITHM = "IdenticalDataAndAlgorithm"
    TRANSFER_LEARNING = "TransferLearning"


@dataclass
class WarmStartConfig:
    warm_start_type: WarmStartTypes
    parents: set[str]

    @classmethod
    def from_job_desc(cls, config: dict[str, Any] | None) -> WarmStartConfig | None:
        if not config:
            return None
        parents = config["ParentHyperParameterTuningJobs"]
        return cls(
            WarmStartTypes(config["WarmStartType"]),
            {parent["HyperParameterTuningJobName"] for parent in parents},
        )

    def to_input_req(self) -> dict[str, Any]:
        return {
            "WarmStartType": self.warm_start_type.value,
            "ParentHyperParameterTuningJobs": [
                {"HyperParameterTuningJobName": parent} for parent in sorted(self.parents)
            ],
        }


@dataclass
class HyperbandStrategyConfig:
    max_resource: int | None = None
    min_resource: int | None = None

    def to_input_req(self) -> dict[str, int]:
        given = {"MinResource": self.min_resource, "MaxResource": self.max_resource}
        return {key: value for key, value in given.items() if value is not None}


@dataclass
class StrategyConfig:
    hyperband_strategy_config: HyperbandStrategyConfig

    @classmethod
    def from_job_desc(cls, config: dict[str, Any] | None) -> StrategyConfig | None:
        hyperband = (config or {}).get("HyperbandStrategyConfig")
        if hyperband is None:
            return None
        return cls(
            HyperbandStrategyConfig(hyperband.get("MaxResource"), hyperband.get("MinResource"))
        )

    def to_input_req(self) -> dict[str, Any]:
        return {"HyperbandStrategyConfig": self.hyperband_strategy_config.to_input_req()}


@dataclass
class TuningJobCompletionCriteriaConfig:
    max_number_of_training_jobs_not_improving: int | None = None
    complete_on_convergence: bool | None = None
    target_objective_metric_value: float | None = None

    @classmethod
    def from_job_desc(
        cls, criteria: dict[str, Any] | None
    ) -> TuningJobCompletionCriteriaConfig | None:
        if not criteria:
            return None
        convergence = criteria.get("ConvergenceDetected", {}).get("CompleteOnConvergence")
        return cls(
            criteria.get("BestObjectiveNotImproving", {}).get(
                "MaxNumberOfTrainingJobsNotImproving"
            ),
            None if convergence is None else convergence == "Enabled",
            criteria.get("TargetObjectiveMetricValue"),
        )

    def to_input_req(self) -> dict[str, Any]:
        criteria: dict[str, Any] = {}
        limit = self.max_number_of_training_jobs_not_improving
        if limit is not None:
            criteria["BestObjectiveNotImproving"] = {"MaxNumberOfTrainingJobsNotImproving": limit}
        if self.target_objective_metric_value is not None:
            criteria["TargetObjectiveMetricValue"] = self.target_objective_metric_value
        if self.complete_on_convergence is not None:
            enabled = "Enabled" if self.complete_on_convergence else "Disabled"
            criteria["ConvergenceDetected"] = {"CompleteOnConvergence": enabled}
        return criteria


@dataclass
class TuningJob:
    """A started tuning job (the SDK's `tuner.latest_tuning_job`)."""

    sagemaker_session: Session
    name: str

    def describe(self) -> dict[str, Any]:
        client = self.sagemaker_session.sagemaker_client
        return dict(
            client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=self.name)
        )

    def stop(self) -> None:
        client = self.sagemaker_session.sagemaker_client
        client.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=self.name)

    def wait(self, poll: float = 0.5) -> dict[str, Any]:
        """Poll until the job ends, with a bar of the trials that ended out of the budget;
        raise unless it Completed or was Stopped, as the SDK does."""
        desc = self.describe()
        with Bar(f"Tuning job {self.name}", tuning_counts(desc)[1]) as bar:
            while True:
                status = desc["HyperParameterTuningJobStatus"]
                ended, budget, detail = tuning_counts(desc)
                bar.update(ended, f"{status}, {detail}", total=budget)
                if status not in IN_PROGRESS:
                    break
                time.sleep(poll)
                desc = self.describe()
        if status not in SUCCEEDED:
            reason = desc.get("FailureReason", "(no reason given)")
            raise UnexpectedStatusError(
                f"Error for HyperParameterTuning job {self.name}: {status}. Reason: {reason}",
                status,
            )
        return desc


class HyperparameterTuner:
    TUNING_JOB_NAME_MAX_LENGTH = 32

    def __init__(
        self,
        estimator: Estimator,
        objective_metric_name: str,
        hyperparameter_ranges: dict[str, ParameterRange],
        metric_definitions: list[dict[str, str]] | None = None,
        strategy: str = "Bayesian",
        objective_type: str = "Maximize",
        max_jobs: int | None = None,
        max_parallel_jobs: int = 1,
        max_runtime_in_seconds: int | None = None,
        tags: list[dict[str, str]] | None = None,
        base_tuning_job_name: str | None = None,
        warm_start_config: WarmStartConfig | None = None,
        strategy_config: StrategyConfig | None = None,
        completion_criteria_config: TuningJobCompletionCriteriaConfig | None = None,
        early_stopping_type: str = "Off",
        random_seed: int | None = None,
    ) -> None:
        if not hyperparameter_ranges:
            raise ValueError("Need to specify hyperparameter ranges")
        self.estimator = estimator
        self.objective_metric_name = objective_metric_name
        self._hyperparameter_ranges = dict(hyperparameter_ranges)
        self.metric_definitions = metric_definitions
        self.strategy = strategy
        self.objective_type = objective_type
        # The SDK's default of one trial, except for Grid, whose count the grid decides.
        self.max_jobs = 1 if max_jobs is None and strategy != GRID else max_jobs
        self.max_parallel_jobs = max_parallel_jobs
        self.max_runtime_in_seconds = max_runtime_in_seconds
        self.tags = tags
        self.base_tuning_job_name = base_tuning_job_name
        self.warm_start_config = warm_start_config
        self.strategy_config = strategy_config
        self.completion_criteria_config = completion_criteria_config
        self.early_stopping_type = early_stopping_type
        self.random_seed = random_seed
        self.latest_tuning_job: TuningJob | None = None

    @classmethod
    def attach(
        cls,
        tuning_job_name: str,
        sagemaker_session: Session | None = None,
        estimator_cls: type[Estimator] = Estimator,
    ) -> HyperparameterTuner:
        """A tuner rebuilt from a tuning job (its estimator from the TrainingJobDefinition, as
        `estimator_cls`), its `latest_tuning_job` that job, as the SDK's `attach`: to wait on
        it, read its best job or analytics, or deploy the best model."""
        session = sagemaker_session or Session()
        client = session.sagemaker_client
        desc = client.describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=tuning_job_name
        )
        definition = desc["TrainingJobDefinition"]
        estimator = estimator_cls._from_definition(
            session, definition, definition.get("StaticHyperParameters", {})
        )
        config = desc["HyperParameterTuningJobConfig"]
        objective = config["HyperParameterTuningJobObjective"]
        limits = config.get("ResourceLimits", {})
        tuner = cls(
            estimator,
            objective["MetricName"],
            parameter_ranges(config["ParameterRanges"], estimator.entry_point is not None),
            strategy=config["Strategy"],
            objective_type=objective["Type"],
            max_parallel_jobs=limits.get("MaxParallelTrainingJobs", 1),
            max_runtime_in_seconds=limits.get("MaxRuntimeInSeconds"),
            warm_start_config=WarmStartConfig.from_job_desc(desc.get("WarmStartConfig")),
            strategy_config=StrategyConfig.from_job_desc(config.get("StrategyConfig")),
            completion_criteria_config=TuningJobCompletionCriteriaConfig.from_job_desc(
                config.get("TuningJobCompletionCriteria")
            ),
            early_stopping_type=config.get("TrainingJobEarlyStoppingType", "Off"),
            random_seed=config.get("RandomSeed"),
        )
        tuner.max_jobs = limits.get("MaxNumberOfTrainingJobs")
        tuner.latest_tuning_job = TuningJob(session, tuning_job_name)
        return tuner

    @property
    def sagemaker_session(self) -> Session:
        return self.estimator.session

    def hyperparameter_ranges(self) -> dict[str, list[dict[str, Any]]]:
        """The request's ParameterRanges: categorical values JSON-encoded for script mode."""
        as_json = self.estimator.entry_point is not None
        ranges: dict[str, list[dict[str, Any]]] = {
            f"{kind}ParameterRanges": [] for kind in ("Continuous", "Categorical", "Integer")
        }
        for name, parameter in self._hyperparameter_ranges.items():
            if as_json and isinstance(parameter, CategoricalParameter):
                tuning_range = parameter.as_json_range(name)
            else:
                tuning_range = parameter.as_tuning_range(name)
            ranges[f"{parameter.kind}ParameterRanges"].append(tuning_range)
        return ranges

    def fit(
        self,
        inputs: str
        | TrainingInput
        | dict[str, str | TrainingInput]
        | RecordSet
        | list[RecordSet]
        | None = None,
        job_name: str | None = None,
        wait: bool = True,
    ) -> None:
        """Start a tuning job (named `<base>-<yymmdd-HHMM>` unless `job_name` is given); a
        built-in's estimator takes record sets, as its own `fit` does."""
        name = job_name or self._job_name()
        if isinstance(inputs, RecordSet | list):
            if not isinstance(self.estimator, AmazonAlgorithmEstimatorBase):
                raise TypeError("Record sets are for the built-in algorithms' estimators")
            inputs = dict(self.estimator._prepare_for_training(inputs))
        request = self._request(name, inputs)
        self.sagemaker_session.sagemaker_client.create_hyper_parameter_tuning_job(**request)
        self.latest_tuning_job = TuningJob(self.sagemaker_session, name)
        if wait:
            self.wait()

    def _job_name(self) -> str:
        """The SDK's short name: the base (or the image's repository) trimmed so that
        `-<yymmdd-HHMM>` fits in 32 characters. Two fits of one base in one minute collide, as
        with the SDK: give `job_name` to tell them apart."""
        image = self.estimator.image_uri.rsplit("/", 1)[-1].split(":")[0]
        base = self.base_tuning_job_name or image
        stamp = time.strftime("%y%m%d-%H%M", time.gmtime())
        return f"{base[: self.TUNING_JOB_NAME_MAX_LENGTH - len(stamp) - 1]}-{stamp}"

    def _request(
        self, name: str, inputs: str | TrainingInput | dict[str, str | TrainingInput] | None
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobConfig": self._tuning_config(),
            "TrainingJobDefinition": self._training_definition(name, inputs),
        }
        if self.warm_start_config is not None:
            request["WarmStartConfig"] = self.warm_start_config.to_input_req()
        if self.tags:
            request["Tags"] = self.tags
        return request

    def _tuning_config(self) -> dict[str, Any]:
        limits: dict[str, int] = {"MaxParallelTrainingJobs": self.max_parallel_jobs}
        if self.max_jobs is not None:
            limits["MaxNumberOfTrainingJobs"] = self.max_jobs
        if self.max_runtime_in_seconds is not None:
            limits["MaxRuntimeInSeconds"] = self.max_runtime_in_seconds
        config: dict[str, Any] = {
            "Strategy": self.strategy,
            "HyperParameterTuningJobObjective": {
                "Type": self.objective_type,
                "MetricName": self.objective_metric_name,
            },
            "ResourceLimits": limits,
            "ParameterRanges": self.hyperparameter_ranges(),
            "TrainingJobEarlyStoppingType": self.early_stopping_type,
        }
        if self.strategy_config is not None:
            config["StrategyConfig"] = self.strategy_config.to_input_req()
        if self.completion_criteria_config is not None:
            config["TuningJobCompletionCriteria"] = self.completion_criteria_config.to_input_req()
        if self.random_seed is not None:
            config["RandomSeed"] = self.random_seed
        return config

    def _training_definition(
        self, name: str, inputs: str | TrainingInput | dict[str, str | TrainingInput] | None
    ) -> dict[str, Any]:
        """The estimator's CreateTrainingJob request as a TrainingJobDefinition: its
        hyperparameters become static less the tuned ones; the tuner's metric definitions, when
        given, replace the estimator's."""
        request = self.estimator._training_request(name, inputs)
        hyperparameters = request.pop("HyperParameters")
        request.pop("TrainingJobName")
        request.pop("Tags", None)  # a trial's tags are the tuning job's business
        request["StaticHyperParameters"] = {
            key: value
            for key, value in hyperparameters.items()
            if key not in self._hyperparameter_ranges
        }
        if self.metric_definitions:
            request["AlgorithmSpecification"]["MetricDefinitions"] = self.metric_definitions
        return request

    def _ensure_last_tuning_job(self) -> TuningJob:
        if self.latest_tuning_job is None:
            raise ValueError("No tuning job available")
        return self.latest_tuning_job

    def describe(self) -> dict[str, Any]:
        return self._ensure_last_tuning_job().describe()

    def wait(self) -> dict[str, Any]:
        return self._ensure_last_tuning_job().wait()

    def stop_tuning_job(self) -> None:
        self._ensure_last_tuning_job().stop()

    def best_training_job(self) -> str:
        """The best trial's training job name; raises, as the SDK does, while no trial has an
        objective value."""
        job = self._ensure_last_tuning_job()
        best = job.describe().get("BestTrainingJob")
        if best is None:
            raise RuntimeError(f"Best training job not available for tuning job: {job.name}")
        return str(best["TrainingJobName"])

    def best_estimator(self) -> Estimator:
        """A copy of the estimator attached to the best training job (the SDK's `attach`)."""
        best = copy.copy(self.estimator)
        best.latest_training_job = self.best_training_job()
        return best

    def deploy(
        self,
        initial_instance_count: int,
        instance_type: str,
        serializer: BaseSerializer | None = None,
        deserializer: BaseDeserializer | None = None,
        endpoint_name: str | None = None,
        wait: bool = True,
    ) -> Predictor:
        """Deploy the best training job's model, the model and endpoint named after the job
        unless `endpoint_name` is given, with the estimator's image (and code)."""
        return self.best_estimator().deploy(
            initial_instance_count,
            instance_type,
            serializer,
            deserializer,
            endpoint_name,
            wait,
        )

    def analytics(self) -> HyperparameterTuningJobAnalytics:
        job = self._ensure_last_tuning_job()
        return HyperparameterTuningJobAnalytics(job.name, self.sagemaker_session)


def parameter_ranges(ranges: dict[str, Any], json_values: bool) -> dict[str, ParameterRange]:
    """A tuning job's ParameterRanges as the tuner's ranges (categorical values JSON-decoded for
    a script-mode estimator, whose hyperparameters are JSON)."""
    out: dict[str, ParameterRange] = {}
    numeric: tuple[tuple[str, type[ParameterRange]], ...] = (
        ("Continuous", ContinuousParameter),
        ("Integer", IntegerParameter),
    )
    for kind, parameter_cls in numeric:
        for item in ranges.get(f"{kind}ParameterRanges", []):
            low, high = _number(item["MinValue"]), _number(item["MaxValue"])
            out[item["Name"]] = parameter_cls(low, high, item.get("ScalingType", "Auto"))
    for item in ranges.get("CategoricalParameterRanges", []):
        values = [json.loads(v) for v in item["Values"]] if json_values else item["Values"]
        out[item["Name"]] = CategoricalParameter(values)
    return out


def _number(text: str) -> int | float:
    """An int where the text is one, so that a range's bounds read back as they were sent."""
    try:
        return int(text)
    except ValueError:
        return float(text)


class HyperparameterTuningJobAnalytics:
    """A tuning job's trials as a pandas DataFrame, one row per trial (cached until
    `clear_cache` or `force_refresh`)."""

    def __init__(
        self, hyperparameter_tuning_job_name: str, sagemaker_session: Session | None = None
    ) -> None:
        self.name = hyperparameter_tuning_job_name
        self._session = sagemaker_session or Session()
        self._dataframe: pd.DataFrame | None = None
        self._summaries: list[dict[str, Any]] | None = None
        self._description: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<opensage.sdk.HyperparameterTuningJobAnalytics for {self.name}>"

    def clear_cache(self) -> None:
        self._dataframe = self._summaries = self._description = None

    def description(self, force_refresh: bool = False) -> dict[str, Any]:
        if force_refresh or self._description is None:
            self._description = TuningJob(self._session, self.name).describe()
        return self._description

    def training_job_summaries(self, force_refresh: bool = False) -> list[dict[str, Any]]:
        """Every trial's HyperParameterTrainingJobSummary, all pages."""
        if force_refresh or self._summaries is None:
            client = self._session.sagemaker_client
            paginator = client.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
            pages = paginator.paginate(HyperParameterTuningJobName=self.name, MaxResults=100)
            self._summaries = [s for page in pages for s in page["TrainingJobSummaries"]]
        return self._summaries

    def dataframe(self, force_refresh: bool = False) -> pd.DataFrame:
        """Columns: the tuned hyperparameters (as floats where they parse), TrainingJobName,
        TrainingJobStatus, FinalObjectiveValue, TrainingStartTime, TrainingEndTime and
        TrainingElapsedTimeSeconds: the SDK's."""
        import pandas as pd  # a heavy import, paid only by those who ask for a frame

        if force_refresh or self._dataframe is None:
            rows = [_row(s) for s in self.training_job_summaries(force_refresh)]
            self._dataframe = pd.DataFrame(rows)
        return self._dataframe

    def export_csv(self, filename: str) -> None:
        self.dataframe().to_csv(filename)


def _row(summary: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, value in summary["TunedHyperParameters"].items():
        try:
            row[name] = float(value)
        except ValueError:
            row[name] = value
    objective = summary.get("FinalHyperParameterTuningJobObjectiveMetric", {})
    start, end = summary.get("TrainingStartTime"), summary.get("TrainingEndTime")
    row.update(
        TrainingJobName=summary["TrainingJobName"],
        TrainingJobStatus=summary["TrainingJobStatus"],
        FinalObjectiveValue=objective.get("Value"),
        TrainingStartTime=start,
        TrainingEndTime=end,
    )
    if start and end:
        row["TrainingElapsedTimeSeconds"] = (end - start).total_seconds()
    return row

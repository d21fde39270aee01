"""One ``torchmetrics.Metric`` class per fusion metric, built from its definition in
:data:`stfuse.metrics.registry.METRICS`: ``ENMetric``, ``QabfMetric``, ``MSSSIMMetric``, ... (each
definition's ``class_name``). Definitions that share a class name become one class told apart by their
one option: ``FMIMetric(preset, feature="pixel" | "gradient")``.

The classes add nothing to their definitions (values, flags, the preset check and the docstring all
come from there); they exist so that a metric can be built, logged and synchronised across processes
like any ``torchmetrics`` metric.
"""

from __future__ import annotations

from typing import Any, ClassVar

from stfuse.metrics.base import FusionMetric
from stfuse.metrics.presets import MetricPreset
from stfuse.metrics.registry import METRICS, MetricDefinition


class DefinedMetric(FusionMetric):
    """The base of the generated classes: one metric, its ``definition`` set by the subclass."""


class OptionMetric(DefinedMetric):
    """One class for several definitions that differ in one option (``option``, e.g. FMI's ``feature``):
    the keyword picks the definition, and defaults to the first one's value."""

    option: ClassVar[str]
    #: The definitions by their option value, in table order.
    choices: ClassVar[dict[Any, MetricDefinition]]

    def __init__(self, preset: str | MetricPreset = "cddfuse", **kwargs: Any) -> None:
        value = kwargs.pop(self.option, next(iter(self.choices)))
        if value not in self.choices:
            family = type(self).__name__.removesuffix("Metric")
            raise ValueError(
                f"unknown {family} {self.option} {value!r}; choose one of {', '.join(map(str, self.choices))}"
            )
        setattr(self, self.option, value)
        self.definition = self.choices[value]  # type: ignore[misc]  # per instance
        super().__init__(preset, **kwargs)


def defined_metric_class(name: str) -> type[FusionMetric]:
    """A class for one registered definition (what :data:`METRIC_CLASSES` holds for a one-definition class)."""
    definition = METRICS[name]
    return type(
        definition.class_name,
        (DefinedMetric,),
        {"definition": definition, "__doc__": definition.summary, "__module__": __name__},
    )


def _option_class(class_name: str, definitions: list[MetricDefinition]) -> type[FusionMetric]:
    keys = {key for definition in definitions for key, _ in definition.options}
    if len(keys) != 1 or any(len(definition.options) != 1 for definition in definitions):
        raise TypeError(f"{class_name}: definitions sharing a class must differ in exactly one option")
    option = keys.pop()
    choices = {definition.options[0][1]: definition for definition in definitions}
    doc = f"{definitions[0].summary} One class for {', '.join(d.name for d in definitions)} (``{option}=``)."
    return type(
        class_name,
        (OptionMetric,),
        {
            "option": option,
            "choices": choices,
            "name": class_name.removesuffix("Metric"),
            "definition": definitions[0],
            "__doc__": doc,
            "__module__": __name__,
        },
    )


def _build_classes() -> dict[str, type[FusionMetric]]:
    by_class: dict[str, list[MetricDefinition]] = {}
    for definition in METRICS.values():
        by_class.setdefault(definition.class_name, []).append(definition)
    return {
        class_name: defined_metric_class(group[0].name)
        if len(group) == 1
        else _option_class(class_name, group)
        for class_name, group in by_class.items()
    }


#: Every metric class by its class name, in table order (derived from the registry).
METRIC_CLASSES: dict[str, type[FusionMetric]] = _build_classes()
globals().update(METRIC_CLASSES)

__all__ = ["METRIC_CLASSES", "DefinedMetric", "OptionMetric", "defined_metric_class", *METRIC_CLASSES]

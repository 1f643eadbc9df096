"""A region tagger processor plugin in Python, against the same WIT as the Rust plugins.

Config: `region` (required) and `key` (default `deployment.region`). Sets `key: region` on
every resource of every batch (upsert), one bulk host call per batch, for traces, metrics
and logs. Built with componentize-py (see README.md).
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world import ConfigError, Outcome, PluginInfo
from wit_world.imports import types

# One instance serves one processor: its configuration lives in the module.
_KEY = "deployment.region"
_VALUE = types.AnyValue_Str("")


def _tag(batch) -> Outcome:
    batch.set_attribute_all(types.Level.RESOURCE, _KEY, _VALUE, types.SetMode.UPSERT)
    return Outcome.FORWARD


class WitWorld(wit_world.WitWorld):
    def info(self) -> PluginInfo:
        return PluginInfo(
            name="py_region",
            version="0.1.0",
            signals=[types.Signal.TRACES, types.Signal.METRICS, types.Signal.LOGS],
            config_schema='{"type":"object","required":["region"],"properties":'
            '{"region":{"type":"string"},"key":{"type":"string"}},'
            '"additionalProperties":false}',
        )

    def configure(self, config_json: str, signal: types.Signal) -> None:
        global _KEY, _VALUE
        try:
            config = json.loads(config_json)
        except ValueError as e:
            raise Err([ConfigError("", f"invalid JSON: {e}")])
        if not isinstance(config, dict):
            raise Err([ConfigError("", "expected a mapping")])
        errors = [ConfigError(k, "unknown field") for k in sorted(set(config) - {"region", "key"})]
        region = config.get("region")
        if not isinstance(region, str) or not region:
            errors.append(ConfigError("region", "required: a non-empty string"))
        key = config.get("key", _KEY)
        if not isinstance(key, str) or not key:
            errors.append(ConfigError("key", "must be a non-empty string"))
        if errors:
            raise Err(errors)
        _KEY, _VALUE = key, types.AnyValue_Str(region)

    def process_traces(self, batch) -> Outcome:
        return _tag(batch)

    def process_metrics(self, batch) -> Outcome:
        return _tag(batch)

    def process_logs(self, batch) -> Outcome:
        return _tag(batch)

    def tick(self, now_unix_nano: int) -> None:
        pass

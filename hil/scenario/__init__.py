"""Scenarios: TOML files of timed actions and expectations run on the simulated Z10 (``z10 hil run``)."""

from hil.scenario.model import Scenario, ScenarioError, load_scenario, parse_scenario

__all__ = ["Scenario", "ScenarioError", "load_scenario", "parse_scenario"]

"""Grafana: the provisioning files under ``dashboards/``, Grafana's SQL macro
expansion (so tests run panel queries on the real database) and
``tsguard dashboards push`` for Grafanas that are not provisioned from files."""

from connectors.grafana.macros import MacroError, expand

__all__ = ["MacroError", "expand"]

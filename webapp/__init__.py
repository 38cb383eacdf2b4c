"""Slimforge's Django project and app: pages, API, WebSocket consumers, services and selectors."""

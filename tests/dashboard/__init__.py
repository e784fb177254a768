"""The dashboard: its HTTP API (test_api.py) and its pages in a browser (test_browser.py)."""

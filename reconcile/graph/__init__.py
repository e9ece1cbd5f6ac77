"""Microsoft Graph access: clouds, msal sign-in, and the retrying, rate-limited client.

``config`` (what to connect to, resolved by the caller) and ``session`` (``open_graph``) are the
doors; nothing in this package reads the settings.
"""

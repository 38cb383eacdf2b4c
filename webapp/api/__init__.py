"""The REST API: thin views that validate, call one service or selector, and render JSON. One module per object."""

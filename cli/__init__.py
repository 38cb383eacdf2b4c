"""`slimforge`, the command-line client: everything goes through the HTTP API and the experiment WebSocket, with an
API token. It imports nothing of the server (webapp, tasks, optimizers), so it runs on any machine with Python."""

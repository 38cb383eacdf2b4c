"""Live pages: the experiment WebSocket (`consumers`) and its routes (`routing`), served by Uvicorn through Channels."""

"""What the HTTP service needs beyond Ray Serve: request parsing and limits, the chat API, the web page."""

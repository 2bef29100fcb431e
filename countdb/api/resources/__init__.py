"""One module per resource family; responders parse, call one service, and set the response."""

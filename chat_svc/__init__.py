"""chat_svc: Chat rooms, history and resumable live streams."""

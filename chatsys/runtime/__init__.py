"""What every chatsys process runs on: its settings, its services and the long-running process kit."""

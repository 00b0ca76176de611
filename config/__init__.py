"""Default configuration and certificate profiles shipped with Kinko."""

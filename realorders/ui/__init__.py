"""What the terminal fronts (``cli`` and ``tui``) share: styles. Rich is allowed here;
the core package never imports it."""

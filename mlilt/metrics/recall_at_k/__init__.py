"""The ``recall_at_k`` evaluate module; a package only so that it ships inside the wheel."""

"""Result storage: one interface, two implementations (local directory, S3)."""

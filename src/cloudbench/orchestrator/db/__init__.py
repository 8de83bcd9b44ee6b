"""Database layer. Functions take ``session`` keyword-only and never commit."""

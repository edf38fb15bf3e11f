"""Reference and baseline models and algorithms compared against HOP's own."""

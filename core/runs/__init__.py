"""Run folders: the store that writes and reads them, their table and their zip archive."""

"""Test helpers shared by the suite: the scripted model server."""

"""The project's own app. `NoteIndex` stands for an FTS5 virtual table and `NoteStats` for a view, both
made by SQL in migrations/0001_initial.py; `Tag` is a plain model (the tests change it)."""

from django.db import models


class Note(models.Model):
    title = models.CharField(max_length=100)
    body = models.TextField()


class NoteIndex(models.Model):
    """The full-text index of the notes, filled by triggers on notes_note (as Wagtail's
    SQLiteFTSIndexEntry is): its rows are the notes' rowids."""

    note = models.OneToOneField(Note, on_delete=models.CASCADE, primary_key=True, db_column="rowid")
    title = models.TextField()
    body = models.TextField()


class NoteStats(models.Model):
    """A view over notes_note."""

    size = models.IntegerField()


class Tag(models.Model):
    name = models.CharField(max_length=50)
